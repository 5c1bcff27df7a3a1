//! Layered settings: built-in defaults, config files, `--config FILE`, then `I4G_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::tlp::Tlp;

/// Prefix of the environment variables that override settings (`I4G_<SECTION>__<KEY>`).
pub const ENV_PREFIX: &str = "I4G_";

/// The whole configuration of the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[partner_feed]`: feed behaviour shared by the publisher and the edge.
    pub partner_feed: PartnerFeedSettings,
    /// `[database]`: where the indicators, keys and audit live.
    pub database: DatabaseSettings,
    /// `[storage]`: where snapshots are written and read.
    pub storage: StorageSettings,
    /// `[publisher]`: the snapshot job.
    pub publisher: PublisherSettings,
    /// `[edge]`: the HTTP service.
    pub edge: EdgeSettings,
}

/// The `[partner_feed]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartnerFeedSettings {
    /// When false the feed routes return 503 while health routes stay up.
    pub enabled: bool,
    /// Requests per minute for keys without a limit of their own.
    pub rate_limit_per_minute: u32,
    /// Page size when a request gives none; also the size of precomputed pages.
    pub default_page_size: u32,
    /// Largest `pageSize` a request may ask for.
    pub max_page_size: u32,
    /// Highest TLP served when a request gives no `tlp`; also the level of precomputed pages.
    pub default_tlp: Tlp,
    /// Upper bound, in seconds, on how long a key lookup is cached (so a revoked key keeps working).
    pub key_cache_ttl_seconds: u64,
}

impl Default for PartnerFeedSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_limit_per_minute: 60,
            default_page_size: 50,
            max_page_size: 500,
            default_tlp: Tlp::Amber,
            key_cache_ttl_seconds: 10,
        }
    }
}

/// The `[database]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (relative to the working directory) or `postgres://…`.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/partner-feed.db".to_owned(),
        }
    }
}

/// The `[storage]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// `file://PATH` (relative to the working directory unless absolute) or `s3://bucket/prefix`.
    pub url: String,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: "file://data/objects".to_owned(),
        }
    }
}

/// The `[publisher]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublisherSettings {
    /// Cron expression with a seconds field, evaluated in UTC.
    pub schedule: String,
    /// Number of newest published snapshots always kept.
    pub retain_snapshots: u32,
    /// Seconds an older snapshot stays readable for pinned pagination before deletion.
    pub pinned_snapshot_ttl_seconds: u64,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        Self {
            schedule: "0 */15 * * * *".to_owned(),
            retain_snapshots: 5,
            pinned_snapshot_ttl_seconds: 3600,
        }
    }
}

/// The `[edge]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSettings {
    /// Address and port the HTTP service listens on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Peers allowed to set `X-Forwarded-For` (addresses or CIDR networks).
    pub trusted_proxies: Vec<IpNet>,
    /// Seconds between two reads of `latest.json`.
    pub snapshot_poll_seconds: u64,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            snapshot_poll_seconds: 10,
        }
    }
}

/// Error returned when the configuration cannot be read or holds an invalid value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be parsed, a key is unknown or a value has the wrong type.
    #[error("invalid configuration: {message}")]
    Read {
        /// The problem, with the dotted key and the file or variable it came from.
        message: String,
        /// The error of the layering library.
        #[source]
        source: Box<figment::Error>,
    },
    /// A value parsed but is out of range or otherwise unusable.
    #[error("invalid configuration: {key} = {value} (from {source_name}): {reason}")]
    Invalid {
        /// Dotted key, such as `partner_feed.max_page_size`.
        key: String,
        /// The offending value, as configured.
        value: String,
        /// Where the value came from: a file path, an environment variable or the built-in defaults.
        source_name: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// A file named with `--config` does not exist.
    #[error("configuration file {0} not found")]
    MissingFile(PathBuf),
}

/// Files and overrides that make up one configuration.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// Folder holding `settings.default.toml` and `settings.local.toml`.
    pub config_dir: PathBuf,
    /// Extra file from `--config`, read after the folder's files.
    pub extra_file: Option<PathBuf>,
}

impl Default for ConfigSources {
    fn default() -> Self {
        Self {
            config_dir: PathBuf::from("config"),
            extra_file: None,
        }
    }
}

impl Settings {
    /// Loads the settings from every layer and validates them.
    pub fn load(sources: &ConfigSources) -> Result<Settings, ConfigError> {
        let figment = sources.figment()?;
        let settings: Settings = figment.extract().map_err(read_error)?;
        settings.validate(&figment)?;
        Ok(settings)
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            value,
            source_name: describe_source(figment, key),
            reason: reason.to_owned(),
        };
        let feed = &self.partner_feed;
        if feed.rate_limit_per_minute == 0 {
            return Err(invalid(
                "partner_feed.rate_limit_per_minute",
                "0".into(),
                "must be at least 1",
            ));
        }
        if feed.max_page_size == 0 {
            return Err(invalid(
                "partner_feed.max_page_size",
                "0".into(),
                "must be at least 1",
            ));
        }
        if feed.default_page_size == 0 {
            return Err(invalid(
                "partner_feed.default_page_size",
                "0".into(),
                "must be at least 1",
            ));
        }
        if feed.default_page_size > feed.max_page_size {
            return Err(invalid(
                "partner_feed.default_page_size",
                feed.default_page_size.to_string(),
                &format!(
                    "must not exceed partner_feed.max_page_size ({})",
                    feed.max_page_size
                ),
            ));
        }
        if feed.default_tlp == Tlp::Red {
            return Err(invalid(
                "partner_feed.default_tlp",
                feed.default_tlp.to_string(),
                "TLP:RED is never published",
            ));
        }
        if feed.key_cache_ttl_seconds == 0 {
            return Err(invalid(
                "partner_feed.key_cache_ttl_seconds",
                "0".into(),
                "must be at least 1",
            ));
        }
        if !self.database.url.starts_with("sqlite:")
            && !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database.url",
                self.database.url.clone(),
                "expected sqlite://PATH or postgres://…",
            ));
        }
        if !self.storage.url.starts_with("file://") && !self.storage.url.starts_with("s3://") {
            return Err(invalid(
                "storage.url",
                self.storage.url.clone(),
                "expected file://PATH or s3://bucket/prefix",
            ));
        }
        if let Err(error) = cron::Schedule::from_str(&self.publisher.schedule) {
            return Err(invalid(
                "publisher.schedule",
                self.publisher.schedule.clone(),
                &format!("not a cron expression with seconds ({error})"),
            ));
        }
        if self.publisher.retain_snapshots == 0 {
            return Err(invalid(
                "publisher.retain_snapshots",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.edge.snapshot_poll_seconds == 0 {
            return Err(invalid(
                "edge.snapshot_poll_seconds",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl ConfigSources {
    fn figment(&self) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(self.config_dir.join("settings.default.toml")))
            .merge(Toml::file(self.config_dir.join("settings.local.toml")));
        if let Some(extra) = &self.extra_file {
            if !Path::new(extra).is_file() {
                return Err(ConfigError::MissingFile(extra.clone()));
            }
            figment = figment.merge(Toml::file(extra));
        }
        Ok(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
    }
}

fn read_error(error: figment::Error) -> ConfigError {
    let messages: Vec<String> = error
        .clone()
        .into_iter()
        .map(|single| describe_read_error(&single))
        .collect();
    ConfigError::Read {
        message: messages.join("; "),
        source: Box::new(error),
    }
}

fn describe_read_error(error: &figment::Error) -> String {
    let key = error.path.join(".").to_lowercase();
    let origin = match &error.metadata {
        Some(metadata) if metadata.name.contains("environment") => {
            format!(
                "environment variable {ENV_PREFIX}{}",
                error.path.join("__").to_uppercase()
            )
        }
        Some(metadata) => match &metadata.source {
            Some(source) => source.to_string(),
            None => metadata.name.to_string(),
        },
        None => "configuration".to_owned(),
    };
    if key.is_empty() {
        format!("{} (from {origin})", error.kind)
    } else {
        format!("{key}: {} (from {origin})", error.kind)
    }
}

fn describe_source(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) if metadata.name.contains("environment") => {
            format!(
                "environment variable {ENV_PREFIX}{}",
                key.replace('.', "__").to_uppercase()
            )
        }
        Some(metadata) => match &metadata.source {
            Some(source) => format!("{} {source}", metadata.name),
            None => metadata.name.to_string(),
        },
        None => "built-in defaults".to_owned(),
    }
}

#[cfg(test)]
// figment's `Jail` closures must return its large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn sources_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ConfigSources) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let sources = ConfigSources {
            config_dir: dir.path().to_owned(),
            extra_file: None,
        };
        (dir, sources)
    }

    #[test]
    fn defaults_apply_without_files() {
        figment::Jail::expect_with(|_| {
            let (_dir, sources) = sources_with(&[]);
            let settings = Settings::load(&sources).unwrap();
            assert_eq!(settings, Settings::default());
            Ok(())
        });
    }

    #[test]
    fn local_file_and_environment_override_in_order() {
        figment::Jail::expect_with(|jail| {
            let (_dir, sources) = sources_with(&[
                (
                    "settings.default.toml",
                    "[partner_feed]\nmax_page_size = 400\ndefault_page_size = 40\n",
                ),
                (
                    "settings.local.toml",
                    "[partner_feed]\ndefault_page_size = 30\nenabled = false\n",
                ),
            ]);
            jail.set_env("I4G_PARTNER_FEED__RATE_LIMIT_PER_MINUTE", "7");
            jail.set_env("I4G_PARTNER_FEED__ENABLED", "true");
            jail.set_env("I4G_PARTNER_FEED__MAX_PAGE_SIZE", "300");
            jail.set_env("I4G_PARTNER_FEED__DEFAULT_PAGE_SIZE", "20");
            let settings = Settings::load(&sources).unwrap();
            assert_eq!(settings.partner_feed.rate_limit_per_minute, 7);
            assert!(settings.partner_feed.enabled);
            assert_eq!(settings.partner_feed.max_page_size, 300);
            assert_eq!(settings.partner_feed.default_page_size, 20);
            Ok(())
        });
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        figment::Jail::expect_with(|_| {
            let (_dir, sources) =
                sources_with(&[("settings.local.toml", "[partner_feed]\npage_size = 3\n")]);
            let message = Settings::load(&sources).unwrap_err().to_string();
            assert!(message.contains("page_size"), "{message}");
            assert!(message.contains("settings.local.toml"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn out_of_range_variable_is_named() {
        figment::Jail::expect_with(|jail| {
            let (_dir, sources) = sources_with(&[]);
            jail.set_env("I4G_PARTNER_FEED__DEFAULT_PAGE_SIZE", "0");
            let message = Settings::load(&sources).unwrap_err().to_string();
            assert!(
                message.contains("I4G_PARTNER_FEED__DEFAULT_PAGE_SIZE"),
                "{message}"
            );
            Ok(())
        });
    }

    #[test]
    fn wrong_type_names_key_and_variable() {
        figment::Jail::expect_with(|jail| {
            let (_dir, sources) = sources_with(&[]);
            jail.set_env("I4G_PARTNER_FEED__MAX_PAGE_SIZE", "lots");
            let message = Settings::load(&sources).unwrap_err().to_string();
            assert!(message.contains("partner_feed.max_page_size"), "{message}");
            assert!(
                message.contains("I4G_PARTNER_FEED__MAX_PAGE_SIZE"),
                "{message}"
            );
            Ok(())
        });
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let cases = [
            (
                "[partner_feed]\ndefault_page_size = 0\n",
                "partner_feed.default_page_size",
            ),
            (
                "[partner_feed]\nmax_page_size = 0\n",
                "partner_feed.max_page_size",
            ),
            (
                "[partner_feed]\ndefault_page_size = 600\n",
                "partner_feed.default_page_size",
            ),
            (
                "[partner_feed]\ndefault_tlp = \"TLP:PURPLE\"\n",
                "default_tlp",
            ),
            (
                "[publisher]\nschedule = \"every minute\"\n",
                "publisher.schedule",
            ),
        ];
        for (text, key) in cases {
            figment::Jail::expect_with(|_| {
                let (_dir, sources) = sources_with(&[("settings.local.toml", text)]);
                let message = Settings::load(&sources).unwrap_err().to_string();
                assert!(message.contains(key), "{text}: {message}");
                assert!(message.contains("settings.local.toml"), "{text}: {message}");
                Ok(())
            });
        }
    }

    #[test]
    fn extra_file_is_read_before_environment() {
        figment::Jail::expect_with(|jail| {
            let (dir, mut sources) = sources_with(&[]);
            let extra = dir.path().join("extra.toml");
            std::fs::write(
                &extra,
                "[edge]\nbind = \"127.0.0.1:9999\"\nsnapshot_poll_seconds = 3\n",
            )
            .unwrap();
            sources.extra_file = Some(extra);
            jail.set_env("I4G_EDGE__SNAPSHOT_POLL_SECONDS", "4");
            let settings = Settings::load(&sources).unwrap();
            assert_eq!(settings.edge.bind.port(), 9999);
            assert_eq!(settings.edge.snapshot_poll_seconds, 4);
            Ok(())
        });
    }
}
