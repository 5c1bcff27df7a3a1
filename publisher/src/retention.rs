//! Removal of old snapshots and of the objects of runs that never published.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use partner_feed_shared::db::{list_published_snapshots, mark_snapshots_deleted, SnapshotRun};
use partner_feed_shared::snapshot::{is_valid_snapshot_id, snapshot_prefix, SNAPSHOTS_FOLDER};
use tracing::info;

use crate::{PublishError, Publisher};

/// Snapshots removed by one retention pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RetentionReport {
    /// Published snapshots deleted because they were past both limits.
    pub expired: Vec<String>,
    /// Snapshot folders of runs that never published, emptied.
    pub leftovers: Vec<String>,
}

impl Publisher {
    /// Deletes the published snapshots beyond the newest `retain_snapshots` that stopped being
    /// the latest more than `pinned_snapshot_ttl_seconds` ago, and every snapshot folder that
    /// no published snapshot owns.
    ///
    /// Only the holder of the publisher lock may call this, because a folder of a run in
    /// progress looks like a leftover. The folders of `current_run_id` and of the snapshot
    /// `latest.json` names are never touched.
    pub(crate) async fn apply_retention(
        &self,
        current_run_id: &str,
    ) -> Result<RetentionReport, PublishError> {
        let now = Utc::now();
        let latest_id = self
            .read_latest()
            .await?
            .map(|latest| latest.pointer.snapshot_id);
        let published = list_published_snapshots(&self.db).await?;

        let mut report = RetentionReport::default();
        let mut kept = HashSet::new();
        for (position, run) in published.iter().enumerate() {
            let is_latest = latest_id.as_deref() == Some(run.snapshot_id.as_str());
            let within_count = position < self.retain_snapshots;
            if is_latest || within_count || !self.is_past_ttl(&published, position, now) {
                kept.insert(run.snapshot_id.as_str());
            } else {
                report.expired.push(run.snapshot_id.clone());
            }
        }

        for snapshot_id in &report.expired {
            let objects = self.delete_snapshot_objects(snapshot_id).await?;
            info!(%snapshot_id, objects, "deleted an expired snapshot");
        }
        mark_snapshots_deleted(&self.db, &report.expired).await?;

        for snapshot_id in self.list_snapshot_folders().await? {
            let protected = snapshot_id == current_run_id
                || latest_id.as_deref() == Some(snapshot_id.as_str())
                || kept.contains(snapshot_id.as_str())
                || report.expired.contains(&snapshot_id);
            if protected {
                continue;
            }
            let objects = self.delete_snapshot_objects(&snapshot_id).await?;
            if objects > 0 {
                info!(%snapshot_id, objects, "deleted the objects of a run that did not publish");
                report.leftovers.push(snapshot_id);
            }
        }
        Ok(report)
    }

    /// Returns true when the snapshot at `position` stopped being the latest at least
    /// `pinned_snapshot_ttl_seconds` ago. Its age counts from the publication of the next newer
    /// snapshot, because pinned readers start on a snapshot while it is the latest.
    fn is_past_ttl(
        &self,
        newest_first: &[SnapshotRun],
        position: usize,
        now: DateTime<Utc>,
    ) -> bool {
        let run = &newest_first[position];
        let superseded_at = position
            .checked_sub(1)
            .map(|newer| &newest_first[newer])
            .and_then(|newer| newer.finished_at)
            .or(run.finished_at)
            .unwrap_or(run.started_at);
        let age = (now - superseded_at).num_seconds();
        u64::try_from(age).is_ok_and(|age| age >= self.pinned_snapshot_ttl_seconds)
    }

    async fn list_snapshot_folders(&self) -> Result<Vec<String>, PublishError> {
        let folder = Path::from(SNAPSHOTS_FOLDER);
        let listing = match self.store.list_with_delimiter(Some(&folder)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(source) => return Err(PublishError::store("list", SNAPSHOTS_FOLDER, source)),
        };
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename())
            .filter(|name| is_valid_snapshot_id(name))
            .map(str::to_owned)
            .collect())
    }

    /// Deletes every object under `snapshots/<id>/` and returns how many there were.
    async fn delete_snapshot_objects(&self, snapshot_id: &str) -> Result<usize, PublishError> {
        let prefix_text = snapshot_prefix(snapshot_id);
        let prefix = Path::from(prefix_text.as_str());
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.store.delete_stream(locations);

        let mut count = 0;
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => count += 1,
                Err(source) => return Err(PublishError::store("delete", prefix_text, source)),
            }
        }
        Ok(count)
    }
}
