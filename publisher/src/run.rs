//! One publisher run: lock, consistent read, objects, manifest, then `latest.json`.

use std::time::Instant;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use partner_feed_shared::db::{
    fail_abandoned_runs, fail_snapshot, find_snapshot_run, finish_snapshot,
    insert_running_snapshot, PublisherLock, RunStatus, RunTotals, SourceRead, SourceSummary,
};
use partner_feed_shared::render::SnapshotInfo;
use partner_feed_shared::snapshot::{
    manifest_path, new_snapshot_id, snapshot_prefix, DefaultPages, LatestPointer, Manifest,
    LATEST_PATH,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::error_chain;
use crate::progress::RunProgress;
use crate::upload::describe;
use crate::writer::{DefaultListing, SnapshotWriter, WrittenSnapshot};
use crate::{PublishError, Publisher, RunOutcome};

/// The snapshot `latest.json` names, with its manifest when that could be read.
pub(crate) struct LatestSnapshot {
    pub pointer: LatestPointer,
    pub manifest: Option<Manifest>,
}

impl Publisher {
    /// Runs one snapshot: publishes it, or records that the source is unchanged.
    ///
    /// Returns [`PublishError::LockHeld`] at once when another run holds the lock. Every run
    /// that took the lock leaves a `feed_snapshots` row with its outcome, and `latest.json`
    /// changes only after every object of the new snapshot and its manifest are written.
    pub async fn publish_once(
        &self,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, PublishError> {
        let started = Instant::now();
        let mut lock = PublisherLock::try_acquire(&self.db).await?;

        let started_at = Utc::now();
        let run_id = new_snapshot_id(started_at);
        let recorded =
            insert_running_snapshot(&self.db, &run_id, started_at, &snapshot_prefix(&run_id)).await;
        if let Err(error) = recorded {
            release(lock).await;
            return Err(error.into());
        }

        let result = self.run_locked(&mut lock, &run_id, started, cancel).await;
        let result = match result {
            Ok(outcome) => self.clean_up_after(&run_id, outcome).await,
            Err(error) => {
                self.record_failure(&run_id, &error).await;
                Err(error)
            }
        };

        release(lock).await;
        result
    }

    async fn run_locked(
        &self,
        lock: &mut PublisherLock,
        run_id: &str,
        started: Instant,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, PublishError> {
        let latest = self.read_latest().await?;
        self.recover_interrupted_runs(run_id, latest.as_ref())
            .await?;

        let generated_at = Utc::now();
        let mut source = SourceRead::begin(&self.db).await?;
        let summary = source.summary().await?;

        if let Some(unchanged) = latest
            .as_ref()
            .filter(|latest| self.is_unchanged(latest, &summary))
        {
            source.finish().await?;
            return self
                .record_unchanged(run_id, unchanged, &summary, started)
                .await;
        }

        let listing = DefaultListing {
            tlp: self.default_tlp,
            page_size: self.default_page_size,
            total_items: source.count_active_up_to(self.default_tlp).await?,
        };
        let snapshot = SnapshotInfo {
            id: run_id.to_owned(),
            generated_at,
        };
        let written = self
            .write_objects(&mut source, snapshot, listing, &summary, cancel)
            .await?;
        source.finish().await?;
        check_totals(&listing, &summary, &written)?;

        let manifest = Manifest {
            snapshot_id: run_id.to_owned(),
            generated_at,
            watermark: summary.watermark,
            source_count: summary.row_count,
            indicator_count: written.index_records,
            default_pages: DefaultPages {
                tlp: listing.tlp,
                page_size: listing.page_size,
                total_items: listing.total_items,
                total_pages: listing.total_pages(),
            },
            counts: written.counts,
            objects: written.objects,
        };
        let manifest_bytes = self.write_manifest(&manifest).await?;

        lock.ensure_held().await?;
        self.write_latest(&manifest).await?;

        let bytes = manifest
            .objects
            .iter()
            .map(|object| object.size)
            .sum::<u64>()
            + manifest_bytes;
        let totals = RunTotals {
            indicator_count: to_i64(manifest.indicator_count),
            watermark: manifest.watermark,
            bytes: to_i64(bytes),
        };
        finish_snapshot(&self.db, run_id, RunStatus::Published, totals, Utc::now()).await?;

        let outcome = RunOutcome::Published {
            snapshot_id: run_id.to_owned(),
            indicators: manifest.indicator_count,
            pages: manifest.default_pages.total_pages,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
        };
        info!(
            snapshot_id = run_id,
            indicators = manifest.indicator_count,
            default_items = manifest.default_pages.total_items,
            pages = manifest.default_pages.total_pages,
            objects = manifest.objects.len() + 1,
            bytes,
            seconds = outcome.seconds(),
            "snapshot published"
        );
        Ok(outcome)
    }

    async fn write_objects(
        &self,
        source: &mut SourceRead,
        snapshot: SnapshotInfo,
        listing: DefaultListing,
        summary: &SourceSummary,
        cancel: &CancellationToken,
    ) -> Result<WrittenSnapshot, PublishError> {
        let progress = RunProgress::start(self.show_progress, summary.publishable_count);
        let mut writer = SnapshotWriter::start(self.store.clone(), snapshot, listing)?;

        let streamed = stream_into(source, &mut writer, &progress, cancel).await;
        let written = match streamed {
            Ok(()) => writer.finish().await,
            Err(error) => {
                writer.abort().await;
                Err(error)
            }
        };
        progress.finish();
        written
    }

    fn is_unchanged(&self, latest: &LatestSnapshot, summary: &SourceSummary) -> bool {
        let Some(manifest) = &latest.manifest else {
            return false;
        };
        manifest.source_count == summary.row_count
            && manifest.watermark == summary.watermark
            && manifest.default_pages.tlp == self.default_tlp
            && manifest.default_pages.page_size == self.default_page_size
    }

    async fn record_unchanged(
        &self,
        run_id: &str,
        latest: &LatestSnapshot,
        summary: &SourceSummary,
        started: Instant,
    ) -> Result<RunOutcome, PublishError> {
        let totals = RunTotals {
            indicator_count: to_i64(summary.publishable_count),
            watermark: summary.watermark,
            bytes: 0,
        };
        finish_snapshot(&self.db, run_id, RunStatus::Unchanged, totals, Utc::now()).await?;

        let outcome = RunOutcome::Unchanged {
            run_id: run_id.to_owned(),
            latest_snapshot_id: latest.pointer.snapshot_id.clone(),
            indicators: summary.publishable_count,
            seconds: started.elapsed().as_secs_f64(),
        };
        info!(
            run_id,
            latest_snapshot_id = %latest.pointer.snapshot_id,
            indicators = summary.publishable_count,
            source_rows = summary.row_count,
            watermark = ?summary.watermark,
            bytes = 0,
            seconds = outcome.seconds(),
            "source unchanged since the latest snapshot; nothing published"
        );
        Ok(outcome)
    }

    /// Reads `latest.json` and the manifest it names. A manifest that cannot be read only
    /// forces a new snapshot, but a store that cannot be reached stops the run.
    pub(crate) async fn read_latest(&self) -> Result<Option<LatestSnapshot>, PublishError> {
        let Some(pointer_bytes) = self.get_optional(LATEST_PATH).await? else {
            return Ok(None);
        };
        let pointer: LatestPointer =
            serde_json::from_slice(&pointer_bytes).map_err(|source| PublishError::InvalidJson {
                path: LATEST_PATH.to_owned(),
                source,
            })?;

        let path = manifest_path(&pointer.snapshot_id);
        let manifest = match self.get_optional(&path).await? {
            None => {
                warn!(snapshot_id = %pointer.snapshot_id, %path, "the manifest of the latest snapshot is missing");
                None
            }
            Some(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(manifest) => Some(manifest),
                Err(error) => {
                    warn!(snapshot_id = %pointer.snapshot_id, %path, %error, "the manifest of the latest snapshot is invalid");
                    None
                }
            },
        };
        Ok(Some(LatestSnapshot { pointer, manifest }))
    }

    async fn get_optional(&self, path: &str) -> Result<Option<bytes::Bytes>, PublishError> {
        let location = Path::from(path);
        let result = match self.store.get(&location).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(PublishError::store("read", path, source)),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|source| PublishError::store("read", path, source))?;
        Ok(Some(bytes))
    }

    /// Marks as failed the runs that died, and as published the snapshot `latest.json` names
    /// when its run died after writing `latest.json` but before recording it.
    async fn recover_interrupted_runs(
        &self,
        run_id: &str,
        latest: Option<&LatestSnapshot>,
    ) -> Result<(), PublishError> {
        if let Some(latest) = latest {
            self.record_latest_as_published(latest).await?;
        }
        let abandoned = fail_abandoned_runs(&self.db, run_id, Utc::now()).await?;
        for snapshot_id in abandoned {
            warn!(%snapshot_id, "found a run that ended without recording a result; recorded it as failed");
        }
        Ok(())
    }

    async fn record_latest_as_published(
        &self,
        latest: &LatestSnapshot,
    ) -> Result<(), PublishError> {
        let snapshot_id = &latest.pointer.snapshot_id;
        let (Some(manifest), Some(run)) = (
            latest.manifest.as_ref(),
            find_snapshot_run(&self.db, snapshot_id).await?,
        ) else {
            return Ok(());
        };
        if run.status == RunStatus::Published {
            return Ok(());
        }
        let totals = RunTotals {
            indicator_count: to_i64(manifest.indicator_count),
            watermark: manifest.watermark,
            bytes: to_i64(manifest.objects.iter().map(|object| object.size).sum()),
        };
        finish_snapshot(
            &self.db,
            snapshot_id,
            RunStatus::Published,
            totals,
            Utc::now(),
        )
        .await?;
        warn!(%snapshot_id, previous_status = %run.status, "latest.json names this snapshot; recorded it as published");
        Ok(())
    }

    async fn write_manifest(&self, manifest: &Manifest) -> Result<u64, PublishError> {
        let path = manifest_path(&manifest.snapshot_id);
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|source| PublishError::render(path.clone(), std::io::Error::from(source)))?;
        let size = describe(&path, &bytes).size;
        put(self.store.as_ref(), &path, bytes).await?;
        Ok(size)
    }

    async fn write_latest(&self, manifest: &Manifest) -> Result<(), PublishError> {
        let pointer = LatestPointer {
            snapshot_id: manifest.snapshot_id.clone(),
            generated_at: manifest.generated_at,
            manifest: manifest_path(&manifest.snapshot_id),
        };
        let bytes = serde_json::to_vec_pretty(&pointer)
            .map_err(|source| PublishError::render(LATEST_PATH, std::io::Error::from(source)))?;
        put(self.store.as_ref(), LATEST_PATH, bytes).await
    }

    async fn clean_up_after(
        &self,
        run_id: &str,
        outcome: RunOutcome,
    ) -> Result<RunOutcome, PublishError> {
        if let Err(error) = self.apply_retention(run_id).await {
            warn!(run_id, error = %error_chain(&error), "snapshot retention failed; it runs again after the next publish");
        }
        Ok(outcome)
    }

    async fn record_failure(&self, run_id: &str, error: &PublishError) {
        let text = error_chain(error);
        if let Err(record_error) = fail_snapshot(&self.db, run_id, &text, Utc::now()).await {
            warn!(run_id, error = %error_chain(&record_error), "failed to record the failed run");
        }
    }
}

async fn stream_into(
    source: &mut SourceRead,
    writer: &mut SnapshotWriter,
    progress: &RunProgress,
    cancel: &CancellationToken,
) -> Result<(), PublishError> {
    let mut rows = source.indicators();
    while let Some(indicator) = rows.try_next().await? {
        if cancel.is_cancelled() {
            return Err(PublishError::Cancelled);
        }
        writer.push(&indicator).await?;
        progress.advance();
    }
    Ok(())
}

/// Checks that the streamed rows match the totals counted in the same transaction.
fn check_totals(
    listing: &DefaultListing,
    summary: &SourceSummary,
    written: &WrittenSnapshot,
) -> Result<(), PublishError> {
    if written.index_records != summary.publishable_count {
        return Err(PublishError::InconsistentRead {
            what: "index records",
            counted: summary.publishable_count,
            streamed: written.index_records,
        });
    }
    if written.default_items != listing.total_items {
        return Err(PublishError::InconsistentRead {
            what: "default page rows",
            counted: listing.total_items,
            streamed: written.default_items,
        });
    }
    Ok(())
}

async fn put(store: &dyn ObjectStore, path: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
    store
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .map_err(|source| PublishError::store("write", path, source))?;
    Ok(())
}

async fn release(lock: PublisherLock) {
    if let Err(error) = lock.release().await {
        warn!(error = %error_chain(&error), "failed to release the publisher lock; it ends with the connection or process");
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
