//! Partner key authentication: reading the presented key, cached lookups by SHA-256, and batched `last_used_at` updates.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lru::LruCache;
use warp::http::header::{HeaderMap, AUTHORIZATION};

use partner_feed_shared::db::{Database, PartnerKey};
use partner_feed_shared::keys::{KeyScopes, RawKey};

use crate::audit::error_chain;
use crate::error::ApiError;

/// Header carrying the raw key.
pub const API_KEY_HEADER: &str = "x-partner-api-key";

/// Maximum lookups (found or not) kept in the cache. Unknown keys are cached too, so the bound matters.
const KEY_CACHE_ENTRIES: usize = 10_000;

/// Seconds between two batched `last_used_at` updates.
pub const KEY_USE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Returns the key sent in `X-Partner-API-Key`, else in `Authorization: Bearer`, or `None` when neither contains one.
pub fn presented_key(headers: &HeaderMap) -> Option<RawKey> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let text = text.trim();
        if !text.is_empty() {
            return Some(RawKey::from_presented(text));
        }
    }
    let authorization = headers.get(AUTHORIZATION)?;
    let text = String::from_utf8_lossy(authorization.as_bytes());
    let (scheme, credentials) = text.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty())
        .then(|| RawKey::from_presented(credentials))
}

/// A key that passed authentication, with what it may read.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    /// The stored key row.
    pub key: Arc<PartnerKey>,
    /// Its parsed scopes.
    pub scopes: KeyScopes,
    /// Requests per minute that apply to it.
    pub rate_limit_per_minute: u32,
}

#[derive(Debug, Clone)]
struct CachedLookup {
    key: Option<Arc<PartnerKey>>,
    fetched_at: Instant,
}

/// Key lookups cached by hash for at most the configured TTL, negative results included.
#[derive(Debug)]
pub struct KeyCache {
    db: Database,
    ttl: Duration,
    entries: Mutex<LruCache<String, CachedLookup>>,
}

impl KeyCache {
    /// Creates a cache whose entries live for `ttl`.
    pub fn new(db: Database, ttl: Duration) -> KeyCache {
        KeyCache {
            db,
            ttl,
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(KEY_CACHE_ENTRIES).expect("non-zero"),
            )),
        }
    }

    /// Finds the stored key for a presented one; `None` when unknown, 503 when the database fails.
    pub async fn lookup(&self, raw: &RawKey) -> Result<Option<Arc<PartnerKey>>, ApiError> {
        let hash = raw.hash();
        if let Some(cached) = self.cached(&hash) {
            return Ok(cached);
        }
        let found = self
            .db
            .find_partner_key_by_hash(&hash)
            .await
            .map_err(|error| {
                tracing::error!(key_prefix = %raw.prefix(), error = %error_chain(&error), "failed to look up a partner key");
                ApiError::Unavailable {
                    dependency: "database",
                }
            })?
            .map(Arc::new);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.put(
            hash,
            CachedLookup {
                key: found.clone(),
                fetched_at: Instant::now(),
            },
        );
        Ok(found)
    }

    fn cached(&self, hash: &str) -> Option<Option<Arc<PartnerKey>>> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match entries.get(hash) {
            Some(entry) if entry.fetched_at.elapsed() < self.ttl => Some(entry.key.clone()),
            Some(_) => {
                entries.pop(hash);
                None
            }
            None => None,
        }
    }
}

/// Checks a stored key at `now`: 403 when revoked, expired or badly scoped.
pub fn check_key(
    key: Arc<PartnerKey>,
    default_rate_limit: u32,
    now: DateTime<Utc>,
) -> Result<AuthenticatedKey, ApiError> {
    let prefix = key.key_prefix.clone();
    if !key.is_active {
        return Err(ApiError::InactiveKey { prefix });
    }
    if let Some(expired_at) = key.expires_at.filter(|_| key.is_expired(now)) {
        return Err(ApiError::ExpiredKey { prefix, expired_at });
    }
    let scopes = key.parsed_scopes().map_err(|error| {
        tracing::error!(key_id = %key.key_id, key_prefix = %prefix, error = %error, "stored scopes of a partner key are invalid");
        ApiError::InvalidKeyScopes {
            prefix: prefix.clone(),
        }
    })?;
    let rate_limit_per_minute = key
        .rate_limit_per_minute
        .and_then(|limit| u32::try_from(limit).ok())
        .filter(|limit| *limit > 0)
        .unwrap_or(default_rate_limit);
    Ok(AuthenticatedKey {
        key,
        scopes,
        rate_limit_per_minute,
    })
}

/// Latest use of each key since the last flush, written to `last_used_at` in batches.
#[derive(Debug, Default)]
pub struct KeyUsage {
    uses: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl KeyUsage {
    /// Notes that `key_id` was used at `at`.
    pub fn note(&self, key_id: &str, at: DateTime<Utc>) {
        let mut uses = self
            .uses
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let latest = uses.entry(key_id.to_owned()).or_insert(at);
        if *latest < at {
            *latest = at;
        }
    }

    /// Writes the noted uses; on failure they are kept for the next flush.
    pub async fn flush(&self, db: &Database) {
        let batch: Vec<(String, DateTime<Utc>)> = {
            let mut uses = self
                .uses
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            uses.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(error) = db.touch_partner_keys(&batch).await {
            tracing::warn!(keys = batch.len(), error = %error_chain(&error), "failed to update last_used_at of partner keys; retrying later");
            for (key_id, at) in batch {
                self.note(&key_id, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    #[test]
    fn key_header_wins_over_bearer() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer second"));
        assert_eq!(presented_key(&headers).unwrap().expose(), "second");
        headers.insert(API_KEY_HEADER, HeaderValue::from_static(" first "));
        assert_eq!(presented_key(&headers).unwrap().expose(), "first");
    }

    #[test]
    fn other_schemes_and_empty_values_are_no_key() {
        let mut headers = HeaderMap::new();
        assert!(presented_key(&headers).is_none());
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert!(presented_key(&headers).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer   "));
        assert!(presented_key(&headers).is_none());
        headers.insert(API_KEY_HEADER, HeaderValue::from_static(""));
        assert!(presented_key(&headers).is_none());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("BEARER abc"));
        assert_eq!(presented_key(&headers).unwrap().expose(), "abc");
    }
}
