//! Layout of snapshots in object storage: object paths, the manifest and the `latest.json` pointer.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tlp::Tlp;

/// Path of the pointer to the newest complete snapshot, written last by every publish.
pub const LATEST_PATH: &str = "latest.json";

/// Folder holding one folder per snapshot.
pub const SNAPSHOTS_FOLDER: &str = "snapshots";

/// Output format of a page or download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The feed's JSON document (`application/json`).
    Json,
    /// RFC 4180 CSV with a header row (`text/csv; charset=utf-8`).
    Csv,
    /// A STIX 2.1 bundle (`application/stix+json;version=2.1`).
    Stix,
}

/// Error returned when a text is not a format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid format {0:?}: expected json, csv or stix")]
pub struct InvalidFormat(pub String);

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Json, Format::Csv, Format::Stix];

    /// Returns the `fmt` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Stix => "stix",
        }
    }

    /// Returns the HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Stix => "application/stix+json;version=2.1",
        }
    }

    /// Returns the file extension of a page in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Stix => "stix.json",
        }
    }
}

impl FromStr for Format {
    type Err = InvalidFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "stix" => Ok(Format::Stix),
            _ => Err(InvalidFormat(text.to_owned())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Creates a new snapshot id: the UTC time to the millisecond and 32 random bits, so ids sort by time.
pub fn new_snapshot_id(now: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        rand::random::<u32>()
    )
}

/// Returns true when `id` has the shape of a snapshot id (ASCII letters, digits and `-`, at most 64).
pub fn is_valid_snapshot_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Returns the folder of a snapshot, `snapshots/<id>`.
pub fn snapshot_prefix(snapshot_id: &str) -> String {
    format!("{SNAPSHOTS_FOLDER}/{snapshot_id}")
}

/// Returns the path of a snapshot's manifest.
pub fn manifest_path(snapshot_id: &str) -> String {
    format!("{}/manifest.json", snapshot_prefix(snapshot_id))
}

/// Returns the path of the index the edge filters (gzip NDJSON of [`crate::Indicator`] records).
pub fn index_path(snapshot_id: &str) -> String {
    format!("{}/index.ndjson.gz", snapshot_prefix(snapshot_id))
}

/// Returns the path of a precomputed default page (`page` counts from 1).
pub fn page_path(snapshot_id: &str, format: Format, page: u64) -> String {
    format!(
        "{}/pages/{}/{page}.{}",
        snapshot_prefix(snapshot_id),
        format.as_str(),
        format.extension()
    )
}

/// Returns the path of the gzip full download in `format`.
pub fn download_path(snapshot_id: &str, format: Format) -> String {
    format!(
        "{}/download/indicators.{}.gz",
        snapshot_prefix(snapshot_id),
        format.extension()
    )
}

/// The `latest.json` pointer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestPointer {
    /// Id of the newest complete snapshot.
    pub snapshot_id: String,
    /// When that snapshot was generated.
    pub generated_at: DateTime<Utc>,
    /// Path of its manifest.
    pub manifest: String,
}

/// Description of one complete snapshot, written after all its other objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Snapshot id.
    pub snapshot_id: String,
    /// Time the consistent read of the source began.
    pub generated_at: DateTime<Utc>,
    /// Largest `updated_at` of the source rows (RED included), or `None` for an empty source.
    pub watermark: Option<DateTime<Utc>>,
    /// Number of source rows (RED included), compared with the watermark to detect change.
    pub source_count: u64,
    /// Number of records in the index: every non-RED indicator, revoked ones included.
    pub indicator_count: u64,
    /// The precomputed default pages.
    pub default_pages: DefaultPages,
    /// Totals of the index records.
    pub counts: Counts,
    /// Every object of the snapshot except the manifest itself.
    pub objects: Vec<ManifestObject>,
}

/// Parameters and totals of the precomputed default pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultPages {
    /// Highest TLP on the pages (the configured `default_tlp`).
    pub tlp: Tlp,
    /// Rows per page (the configured `default_page_size`).
    pub page_size: u64,
    /// Active indicators at or below `tlp`.
    pub total_items: u64,
    /// Number of pages in each format (0 when `total_items` is 0).
    pub total_pages: u64,
}

/// Totals of the index records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Active indicators per category.
    pub active_by_category: BTreeMap<String, u64>,
    /// Active indicators per TLP name.
    pub active_by_tlp: BTreeMap<String, u64>,
    /// Index records per status (`active`, `revoked`).
    pub by_status: BTreeMap<String, u64>,
}

/// One object of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestObject {
    /// Full path in the store.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_valid_and_sortable() {
        let earlier = new_snapshot_id("2026-01-02T03:04:05.006Z".parse().unwrap());
        let later = new_snapshot_id("2026-01-02T03:04:05.007Z".parse().unwrap());
        assert!(is_valid_snapshot_id(&earlier));
        assert!(earlier.starts_with("20260102T030405006Z-"));
        assert!(earlier < later);
        assert!(!is_valid_snapshot_id("../etc"));
        assert!(!is_valid_snapshot_id(""));
    }

    #[test]
    fn paths_sit_under_the_snapshot_folder() {
        assert_eq!(
            page_path("s1", Format::Csv, 3),
            "snapshots/s1/pages/csv/3.csv"
        );
        assert_eq!(
            page_path("s1", Format::Stix, 1),
            "snapshots/s1/pages/stix/1.stix.json"
        );
        assert_eq!(
            download_path("s1", Format::Json),
            "snapshots/s1/download/indicators.json.gz"
        );
        assert_eq!(manifest_path("s1"), "snapshots/s1/manifest.json");
        assert_eq!(index_path("s1"), "snapshots/s1/index.ndjson.gz");
    }

    #[test]
    fn format_parses_any_case() {
        assert_eq!("STIX".parse::<Format>(), Ok(Format::Stix));
        assert!("xml".parse::<Format>().is_err());
    }
}
