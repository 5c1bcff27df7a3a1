//! Snapshot job of the partner feed: reads `indicators` in one consistent read and writes the
//! feed's pages, downloads, index and manifest to object storage, then `latest.json`.
//!
//! A snapshot lives under `snapshots/<id>/`:
//!
//! - `pages/<format>/<n>.<ext>`: the default listing (active indicators at or below
//!   `default_tlp`, `default_page_size` per page) in JSON, CSV and STIX;
//! - `download/indicators.<ext>.gz`: the same rows in one gzip document per format;
//! - `index.ndjson.gz`: every non-RED indicator, revoked ones included, one JSON record per
//!   line in publish order, which the edge filters for other queries;
//! - `manifest.json`: counts, totals, the watermark and the SHA-256 and size of every object.
//!
//! `latest.json` at the root is written last and names the newest complete snapshot.

mod error;
mod progress;
mod retention;
mod run;
mod schedule;
mod upload;
mod writer;

use std::sync::Arc;

use object_store::ObjectStore;
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::Database;
use partner_feed_shared::Tlp;

pub use error::{error_chain, PublishError};

/// The publisher: one [`publish_once`](Self::publish_once) per run, or
/// [`run_scheduled`](Self::run_scheduled) for its own cron loop.
#[derive(Debug, Clone)]
pub struct Publisher {
    db: Database,
    store: Arc<dyn ObjectStore>,
    default_tlp: Tlp,
    default_page_size: u64,
    schedule: String,
    retain_snapshots: usize,
    pinned_snapshot_ttl_seconds: u64,
    show_progress: bool,
}

impl Publisher {
    /// Creates a publisher that reads `db` and writes to `store` with the given settings.
    pub fn new(settings: &Settings, db: Database, store: Arc<dyn ObjectStore>) -> Publisher {
        Publisher {
            db,
            store,
            default_tlp: settings.partner_feed.default_tlp,
            default_page_size: u64::from(settings.partner_feed.default_page_size.max(1)),
            schedule: settings.publisher.schedule.clone(),
            retain_snapshots: usize::try_from(settings.publisher.retain_snapshots.max(1))
                .unwrap_or(usize::MAX),
            pinned_snapshot_ttl_seconds: settings.publisher.pinned_snapshot_ttl_seconds,
            show_progress: false,
        }
    }

    /// Draws a progress bar on stderr during runs when `enabled` and stderr is a terminal.
    pub fn with_progress(mut self, enabled: bool) -> Publisher {
        self.show_progress = enabled;
        self
    }
}

/// Result of a run that did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// A new snapshot was written and `latest.json` names it.
    Published {
        /// Id of the new snapshot.
        snapshot_id: String,
        /// Records in its index (every non-RED indicator).
        indicators: u64,
        /// Default pages in each format.
        pages: u64,
        /// Bytes written, manifest included.
        bytes: u64,
        /// Duration of the run.
        seconds: f64,
    },
    /// The source had the same row count and watermark as the latest snapshot, so nothing
    /// was written.
    Unchanged {
        /// Id of this run in `feed_snapshots`.
        run_id: String,
        /// Id of the snapshot `latest.json` still names.
        latest_snapshot_id: String,
        /// Non-RED indicators in the source.
        indicators: u64,
        /// Duration of the run.
        seconds: f64,
    },
}

impl RunOutcome {
    /// Returns the duration of the run in seconds.
    pub fn seconds(&self) -> f64 {
        match self {
            RunOutcome::Published { seconds, .. } | RunOutcome::Unchanged { seconds, .. } => {
                *seconds
            }
        }
    }
}
