//! Queries on `feed_snapshots`, the record of every publisher run.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{Database, DbError, QueryContext};
use crate::on_pool;

/// State of one publisher run, as stored in `feed_snapshots.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// The run is in progress, or its process died before recording an end.
    Running,
    /// The snapshot was written and `latest.json` switched to it.
    Published,
    /// The source had not changed since the last published snapshot, so nothing was written.
    Unchanged,
    /// The run stopped on an error, recorded in `error`.
    Failed,
    /// A published snapshot whose objects retention removed.
    Deleted,
}

impl RunStatus {
    /// Returns the name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Published => "published",
            RunStatus::Unchanged => "unchanged",
            RunStatus::Failed => "failed",
            RunStatus::Deleted => "deleted",
        }
    }
}

impl FromStr for RunStatus {
    type Err = DbError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "running" => Ok(RunStatus::Running),
            "published" => Ok(RunStatus::Published),
            "unchanged" => Ok(RunStatus::Unchanged),
            "failed" => Ok(RunStatus::Failed),
            "deleted" => Ok(RunStatus::Deleted),
            _ => Err(DbError::Decode {
                column: "feed_snapshots.status".to_owned(),
                reason: format!("unknown run status {text:?}"),
            }),
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `feed_snapshots`.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRun {
    /// Snapshot id, also the folder name under `snapshots/`.
    pub snapshot_id: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the run recorded its end, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// State of the run.
    pub status: RunStatus,
    /// Index records written (published runs) or found unchanged.
    pub indicator_count: Option<i64>,
    /// Largest `updated_at` of the source rows the run read.
    pub watermark: Option<DateTime<Utc>>,
    /// Folder of the snapshot's objects in the store.
    pub object_prefix: String,
    /// Total size of the snapshot's objects, manifest included.
    pub bytes: Option<i64>,
    /// Error text of a failed run.
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SnapshotRunRow {
    snapshot_id: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    indicator_count: Option<i64>,
    watermark: Option<DateTime<Utc>>,
    object_prefix: String,
    bytes: Option<i64>,
    error: Option<String>,
}

impl TryFrom<SnapshotRunRow> for SnapshotRun {
    type Error = DbError;

    fn try_from(row: SnapshotRunRow) -> Result<Self, Self::Error> {
        Ok(SnapshotRun {
            status: row.status.parse()?,
            snapshot_id: row.snapshot_id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            indicator_count: row.indicator_count,
            watermark: row.watermark,
            object_prefix: row.object_prefix,
            bytes: row.bytes,
            error: row.error,
        })
    }
}

const RUN_COLUMNS: &str = "snapshot_id, started_at, finished_at, status, \
     CAST(indicator_count AS BIGINT) AS indicator_count, watermark, object_prefix, \
     CAST(bytes AS BIGINT) AS bytes, error";

/// Totals a run records when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunTotals {
    /// Index records written, or the count of the unchanged source.
    pub indicator_count: i64,
    /// Largest `updated_at` of the source rows.
    pub watermark: Option<DateTime<Utc>>,
    /// Bytes written to the store (0 for an unchanged run).
    pub bytes: i64,
}

/// Inserts the row of a run that starts now, with status `running`.
pub async fn insert_running_snapshot(
    db: &Database,
    snapshot_id: &str,
    started_at: DateTime<Utc>,
    object_prefix: &str,
) -> Result<(), DbError> {
    let sql = "INSERT INTO feed_snapshots (snapshot_id, started_at, status, object_prefix) \
               VALUES ($1, $2, 'running', $3)";
    on_pool!(db, pool => sqlx::query(sql)
        .bind(snapshot_id)
        .bind(started_at)
        .bind(object_prefix)
        .execute(pool)
        .await
        .map(|_| ()))
    .action(|| format!("recording the start of snapshot run {snapshot_id}"))?;
    Ok(())
}

/// Records the end of a run that published or found the source unchanged.
///
/// `status` must be [`RunStatus::Published`] or [`RunStatus::Unchanged`].
pub async fn finish_snapshot(
    db: &Database,
    snapshot_id: &str,
    status: RunStatus,
    totals: RunTotals,
    finished_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let sql = "UPDATE feed_snapshots SET status = $2, finished_at = $3, indicator_count = $4, \
               watermark = $5, bytes = $6, error = NULL WHERE snapshot_id = $1";
    on_pool!(db, pool => sqlx::query(sql)
        .bind(snapshot_id)
        .bind(status.as_str())
        .bind(finished_at)
        .bind(totals.indicator_count)
        .bind(totals.watermark)
        .bind(totals.bytes)
        .execute(pool)
        .await
        .map(|_| ()))
    .action(|| format!("recording snapshot run {snapshot_id} as {status}"))?;
    Ok(())
}

/// Records the failure of a run with the error text.
pub async fn fail_snapshot(
    db: &Database,
    snapshot_id: &str,
    error: &str,
    finished_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let sql = "UPDATE feed_snapshots SET status = 'failed', finished_at = $2, error = $3 \
               WHERE snapshot_id = $1";
    on_pool!(db, pool => sqlx::query(sql)
        .bind(snapshot_id)
        .bind(finished_at)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ()))
    .action(|| format!("recording snapshot run {snapshot_id} as failed"))?;
    Ok(())
}

/// Sets the status of the given runs to `deleted`, keeping their other columns.
pub async fn mark_snapshots_deleted(db: &Database, snapshot_ids: &[String]) -> Result<(), DbError> {
    let sql = "UPDATE feed_snapshots SET status = 'deleted' WHERE snapshot_id = $1";
    for snapshot_id in snapshot_ids {
        on_pool!(db, pool => sqlx::query(sql).bind(snapshot_id).execute(pool).await.map(|_| ()))
            .action(|| format!("recording snapshot {snapshot_id} as deleted"))?;
    }
    Ok(())
}

/// Records as failed every run still `running` other than `current_id`.
///
/// Only the holder of the publisher lock may call this: it is what makes every other
/// `running` row the trace of a process that died. Returns the ids it changed.
pub async fn fail_abandoned_runs(
    db: &Database,
    current_id: &str,
    finished_at: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    let select = "SELECT snapshot_id FROM feed_snapshots WHERE status = 'running' \
                  AND snapshot_id <> $1 ORDER BY snapshot_id";
    let ids: Vec<String> =
        on_pool!(db, pool => sqlx::query_scalar(select).bind(current_id).fetch_all(pool).await)
            .action(|| "listing abandoned snapshot runs".to_owned())?;
    for snapshot_id in &ids {
        fail_snapshot(
            db,
            snapshot_id,
            "the run ended without recording a result",
            finished_at,
        )
        .await?;
    }
    Ok(ids)
}

/// Returns the run with this id, if any.
pub async fn find_snapshot_run(
    db: &Database,
    snapshot_id: &str,
) -> Result<Option<SnapshotRun>, DbError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM feed_snapshots WHERE snapshot_id = $1");
    let row: Option<SnapshotRunRow> = on_pool!(db, pool => sqlx::query_as(&sql)
        .bind(snapshot_id)
        .fetch_optional(pool)
        .await)
    .action(|| format!("reading snapshot run {snapshot_id}"))?;
    row.map(SnapshotRun::try_from).transpose()
}

/// Returns the runs with status `published`, newest first.
pub async fn list_published_snapshots(db: &Database) -> Result<Vec<SnapshotRun>, DbError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM feed_snapshots WHERE status = 'published' \
         ORDER BY started_at DESC, snapshot_id DESC"
    );
    let rows: Vec<SnapshotRunRow> =
        on_pool!(db, pool => sqlx::query_as(&sql).fetch_all(pool).await)
            .action(|| "listing published snapshots".to_owned())?;
    rows.into_iter().map(SnapshotRun::try_from).collect()
}
