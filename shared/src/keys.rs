//! Partner API keys: generation, hashing, prefixes and scopes.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::tlp::Tlp;

/// Number of characters of a raw key kept as its prefix.
pub const KEY_PREFIX_LEN: usize = 8;

/// Length of a raw key: 32 random bytes in URL-safe base64 without padding.
pub const RAW_KEY_LEN: usize = 43;

/// A raw API key as a partner presents it. Its `Debug` and `Display` never show the key.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKey(String);

impl RawKey {
    /// Generates a new key from 256 bits of the operating system's random generator.
    pub fn generate() -> RawKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        RawKey(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a key presented by a client, as is.
    pub fn from_presented(text: &str) -> RawKey {
        RawKey(text.to_owned())
    }

    /// Returns the key itself: only for printing it once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the lower-case hex SHA-256 of the key, as stored in `partner_api_keys.key_hash`.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Returns the first eight characters, or the whole key when it is shorter.
    pub fn prefix(&self) -> String {
        self.0.chars().take(KEY_PREFIX_LEN).collect()
    }
}

impl fmt::Debug for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawKey({}…)", self.prefix())
    }
}

impl fmt::Display for RawKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.prefix())
    }
}

/// What a key may read, parsed from the `scopes` JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScopes {
    /// Highest TLP the key may receive (`tlp:<level>`; `tlp:amber` when absent).
    pub max_tlp: Tlp,
    /// Lower-case categories the key is restricted to (`category:<name>`); empty means all.
    pub categories: Vec<String>,
}

impl Default for KeyScopes {
    fn default() -> Self {
        Self {
            max_tlp: Tlp::Amber,
            categories: Vec::new(),
        }
    }
}

/// Error returned for a scope entry that is not `tlp:<level>` or `category:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected tlp:<clear|green|amber|amber+strict> or category:<name>")]
pub struct InvalidScope(pub String);

impl KeyScopes {
    /// Parses scope entries. `tlp:red` is rejected because red indicators are never published.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<KeyScopes, InvalidScope> {
        let mut scopes = KeyScopes::default();
        for entry in entries {
            let entry = entry.as_ref();
            let (kind, name) = entry
                .split_once(':')
                .ok_or_else(|| InvalidScope(entry.to_owned()))?;
            match kind.to_ascii_lowercase().as_str() {
                "tlp" => {
                    let level: Tlp = name.parse().map_err(|_| InvalidScope(entry.to_owned()))?;
                    if level == Tlp::Red {
                        return Err(InvalidScope(entry.to_owned()));
                    }
                    scopes.max_tlp = level;
                }
                "category" if !name.trim().is_empty() => {
                    scopes.categories.push(name.to_lowercase())
                }
                _ => return Err(InvalidScope(entry.to_owned())),
            }
        }
        Ok(scopes)
    }

    /// Returns true when the key may read `category` (compared case-insensitively).
    pub fn allows_category(&self, category: &str) -> bool {
        self.categories.is_empty()
            || self
                .categories
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_has_43_url_safe_characters() {
        let key = RawKey::generate();
        assert_eq!(key.expose().len(), RAW_KEY_LEN);
        assert!(key
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(key.prefix(), &key.expose()[..8]);
        assert_ne!(key, RawKey::generate());
    }

    #[test]
    fn hash_is_lower_case_hex_sha256() {
        let key = RawKey::from_presented("abc");
        assert_eq!(
            key.hash(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_and_display_hide_the_key() {
        let key = RawKey::generate();
        assert!(!format!("{key:?}").contains(key.expose()));
        assert!(!format!("{key}").contains(key.expose()));
    }

    #[test]
    fn scopes_parse_tlp_and_categories() {
        let scopes =
            KeyScopes::parse(&["tlp:green", "category:Phishing", "category:crypto_drainer"])
                .unwrap();
        assert_eq!(scopes.max_tlp, Tlp::Green);
        assert!(scopes.allows_category("phishing"));
        assert!(scopes.allows_category("CRYPTO_DRAINER"));
        assert!(!scopes.allows_category("malware_download"));
        assert_eq!(KeyScopes::parse::<&str>(&[]).unwrap(), KeyScopes::default());
    }

    #[test]
    fn scopes_reject_red_and_unknown_entries() {
        for entry in ["tlp:red", "tlp:purple", "admin", "category:", "region:eu"] {
            assert!(
                KeyScopes::parse(&[entry]).is_err(),
                "{entry} must be rejected"
            );
        }
    }
}
