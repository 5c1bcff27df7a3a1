//! The audit pipeline: requests queue one record each, a writer task inserts them in batches,
//! retries while the database is down, and spools to local disk what it cannot write at shutdown.
//!
//! A full queue makes requests wait instead of dropping records. Every record carries a unique
//! `audit_id` and the insert skips ids already stored, so retries and spool replays never
//! duplicate a row.

use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use partner_feed_shared::db::{AuditRecord, Database, MAX_AUDIT_BATCH};

use crate::metrics::Metrics;

/// Capacity of the queue, in records, before requests start waiting for the writer.
pub const AUDIT_QUEUE_CAPACITY: usize = 10_000;

/// First pause after a failed write. It doubles after each failure, up to [`RETRY_MAX_DELAY`].
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);

/// Maximum pause between two write attempts.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// How long the writer keeps trying at shutdown before spooling what is left.
const SHUTDOWN_FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Extension of spool files; files being written carry `.tmp` until renamed.
const SPOOL_EXTENSION: &str = "ndjson";

/// The request side of the pipeline: queues one record per request.
#[derive(Debug, Clone)]
pub struct AuditSink {
    sender: mpsc::Sender<AuditRecord>,
    spool: Arc<AuditSpool>,
}

impl AuditSink {
    /// Queues a record, waiting while the queue is full.
    ///
    /// After the writer has stopped, the record goes straight to the spool on local disk.
    pub async fn record(&self, record: AuditRecord) {
        if let Err(mpsc::error::SendError(record)) = self.sender.send(record).await {
            self.spool.write_or_log(std::slice::from_ref(&record));
        }
    }

    /// Returns the number of queued records.
    pub fn queued(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

/// Creates the queue: the sink for request handlers and the writer to run as a task.
pub fn audit_queue(db: Database, spool: AuditSpool, metrics: Metrics) -> (AuditSink, AuditWriter) {
    let (sender, receiver) = mpsc::channel(AUDIT_QUEUE_CAPACITY);
    let spool = Arc::new(spool);
    let sink = AuditSink {
        sender,
        spool: Arc::clone(&spool),
    };
    let writer = AuditWriter {
        receiver,
        db,
        spool,
        metrics,
    };
    (sink, writer)
}

/// Folder of NDJSON files holding audit records that could not be written to the database.
#[derive(Debug)]
pub struct AuditSpool {
    folder: PathBuf,
    metrics: Metrics,
    write_lock: Mutex<()>,
}

impl AuditSpool {
    /// Opens the spool folder, creating it when missing, and counts the records it holds.
    pub fn open(folder: &Path, metrics: Metrics) -> io::Result<AuditSpool> {
        fs::create_dir_all(folder)?;
        let spool = AuditSpool {
            folder: folder.to_owned(),
            metrics,
            write_lock: Mutex::new(()),
        };
        let mut spooled = 0;
        for file in spool.files()? {
            spooled += read_spool_file(&file)?.len();
        }
        spool.metrics.audit_spooled_records.set(spooled as i64);
        Ok(spool)
    }

    /// Returns the spool files, oldest first.
    pub fn files(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.folder)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == SPOOL_EXTENSION))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Writes records to a new spool file, made visible by a rename once complete and synced.
    pub fn write(&self, records: &[AuditRecord]) -> io::Result<PathBuf> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let name = format!(
            "audit-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        let partial = self.folder.join(format!("{name}.tmp"));
        let finished = self.folder.join(format!("{name}.{SPOOL_EXTENSION}"));
        let mut file = io::BufWriter::new(fs::File::create(&partial)?);
        for record in records {
            serde_json::to_writer(&mut file, record)?;
            file.write_all(b"\n")?;
        }
        file.into_inner()?.sync_all()?;
        fs::rename(&partial, &finished)?;
        self.metrics.audit_spooled_records.add(records.len() as i64);
        Ok(finished)
    }

    fn write_or_log(&self, records: &[AuditRecord]) {
        match self.write(records) {
            Ok(file) => tracing::warn!(
                records = records.len(),
                file = %file.display(),
                "audit records spooled to local disk; they are written to the database on the next start"
            ),
            Err(error) => tracing::error!(
                records = records.len(),
                folder = %self.folder.display(),
                error = %error,
                "failed to spool audit records; they are lost"
            ),
        }
    }
}

fn read_spool_file(path: &Path) -> io::Result<Vec<AuditRecord>> {
    let reader = io::BufReader::new(fs::File::open(path)?);
    let mut records = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(record) => records.push(record),
            Err(error) => tracing::error!(
                file = %path.display(),
                line = number + 1,
                error = %error,
                "skipping an unreadable audit record in the spool"
            ),
        }
    }
    Ok(records)
}

/// The database side of the pipeline.
#[derive(Debug)]
pub struct AuditWriter {
    receiver: mpsc::Receiver<AuditRecord>,
    db: Database,
    spool: Arc<AuditSpool>,
    metrics: Metrics,
}

impl AuditWriter {
    /// Replays the spool, then writes queued records until `closing` fires.
    ///
    /// After `closing` fires, it drains the queue, keeps trying for up to
    /// [`SHUTDOWN_FLUSH_DEADLINE`] and spools whatever the database did not take. Stop the
    /// request side first, because a record sent after the drain goes straight to the spool.
    pub async fn run(mut self, closing: CancellationToken) {
        let mut replay = match self.spool.files() {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(error = %error, "failed to list the audit spool");
                Vec::new()
            }
        };
        let mut batch: Vec<AuditRecord> = Vec::with_capacity(MAX_AUDIT_BATCH);
        let mut retry_delay = RETRY_FIRST_DELAY;
        loop {
            if batch.is_empty() && replay.is_empty() {
                tokio::select! {
                    received = self.receiver.recv() => match received {
                        Some(record) => batch.push(record),
                        None => break,
                    },
                    () = closing.cancelled() => break,
                }
            }
            self.fill(&mut batch);
            // A write blocked by the database must not hold up shutdown. The batch stays
            // pending, and an insert that committed anyway is skipped on the retry.
            let attempt =
                async { self.replay_one(&mut replay).await && self.write(&mut batch).await };
            let written = tokio::select! {
                written = attempt => written,
                () = closing.cancelled() => break,
            };
            if written {
                retry_delay = RETRY_FIRST_DELAY;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(retry_delay) => {}
                () = closing.cancelled() => break,
            }
            retry_delay = (retry_delay * 2).min(RETRY_MAX_DELAY);
        }
        self.flush_at_shutdown(batch, replay).await;
    }

    fn fill(&mut self, batch: &mut Vec<AuditRecord>) {
        while batch.len() < MAX_AUDIT_BATCH {
            match self.receiver.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        self.metrics
            .audit_queue_depth
            .set((self.receiver.len() + batch.len()) as i64);
    }

    /// Writes the batch; returns true when it is written (or was empty) and clears it.
    async fn write(&self, batch: &mut Vec<AuditRecord>) -> bool {
        if batch.is_empty() {
            return true;
        }
        match self.db.insert_audit_records(batch).await {
            Ok(_) => {
                self.metrics
                    .audit_records_written
                    .inc_by(batch.len() as u64);
                batch.clear();
                self.metrics
                    .audit_queue_depth
                    .set(self.receiver.len() as i64);
                true
            }
            Err(error) => {
                self.metrics.audit_write_failures.inc();
                tracing::warn!(
                    records = batch.len(),
                    queued = self.receiver.len(),
                    error = %error_chain(&error),
                    "failed to write audit records; retrying"
                );
                false
            }
        }
    }

    /// Writes the oldest spool file; returns true when the spool is empty or the file was written.
    async fn replay_one(&self, replay: &mut Vec<PathBuf>) -> bool {
        let Some(file) = replay.first().cloned() else {
            return true;
        };
        let records = match read_spool_file(&file) {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(file = %file.display(), error = %error, "failed to read an audit spool file; leaving it in place");
                replay.remove(0);
                return true;
            }
        };
        if let Err(error) = self.db.insert_audit_records(&records).await {
            self.metrics.audit_write_failures.inc();
            tracing::warn!(file = %file.display(), error = %error_chain(&error), "failed to replay spooled audit records; retrying");
            return false;
        }
        if let Err(error) = fs::remove_file(&file) {
            tracing::error!(file = %file.display(), error = %error, "failed to delete a replayed audit spool file; its records will be replayed again and skipped");
        }
        self.metrics.audit_spooled_records.sub(records.len() as i64);
        self.metrics
            .audit_records_written
            .inc_by(records.len() as u64);
        tracing::info!(file = %file.display(), records = records.len(), "replayed spooled audit records");
        replay.remove(0);
        true
    }

    /// Writes what is queued and any spool file not yet replayed, until the deadline; spools the
    /// rest. Spool files left unreplayed stay on disk for the next start.
    async fn flush_at_shutdown(mut self, mut pending: Vec<AuditRecord>, mut replay: Vec<PathBuf>) {
        self.receiver.close();
        while let Some(record) = self.receiver.recv().await {
            pending.push(record);
        }
        let deadline = Instant::now() + SHUTDOWN_FLUSH_DEADLINE;
        let mut retry_delay = RETRY_FIRST_DELAY;
        while !pending.is_empty() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let attempt =
                tokio::time::timeout(remaining, self.db.insert_audit_records(&pending)).await;
            match attempt {
                Ok(Ok(_)) => {
                    self.metrics
                        .audit_records_written
                        .inc_by(pending.len() as u64);
                    pending.clear();
                }
                Ok(Err(error)) => {
                    self.metrics.audit_write_failures.inc();
                    tracing::warn!(records = pending.len(), error = %error_chain(&error), "failed to write audit records at shutdown; retrying");
                    tokio::time::sleep(retry_delay.min(remaining)).await;
                    retry_delay = (retry_delay * 2).min(RETRY_MAX_DELAY);
                }
                Err(_) => break,
            }
        }
        while !replay.is_empty() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match tokio::time::timeout(remaining, self.replay_one(&mut replay)).await {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        if !pending.is_empty() {
            self.spool.write_or_log(&pending);
        }
        self.metrics.audit_queue_depth.set(0);
        tracing::info!("audit queue flushed");
    }
}

/// Formats an error with all its sources, for logs.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            audit_id: id.to_owned(),
            key_id: None,
            partner_name: None,
            key_prefix: None,
            endpoint: "/feeds/indicators".to_owned(),
            method: "GET".to_owned(),
            query_params: serde_json::json!({}),
            result_count: None,
            response_code: 401,
            ip_address: None,
            user_agent: None,
            snapshot_id: None,
            latency_ms: 0.1,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn spool_files_round_trip_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let spool = AuditSpool::open(dir.path(), metrics.clone()).unwrap();
        spool.write(&[record("a"), record("b")]).unwrap();
        spool.write(&[record("c")]).unwrap();

        let files = spool.files().unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(read_spool_file(&files[0]).unwrap().len(), 2);
        assert_eq!(metrics.audit_spooled_records.get(), 3);

        let reopened = AuditSpool::open(dir.path(), Metrics::new()).unwrap();
        assert_eq!(reopened.metrics.audit_spooled_records.get(), 3);
    }

    #[tokio::test]
    async fn writer_replays_spool_and_writes_queue_then_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("edge.db").display());
        let db = Database::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let spool_folder = dir.path().join("spool");
        let earlier = AuditSpool::open(&spool_folder, Metrics::new()).unwrap();
        earlier
            .write(&[record("spooled-1"), record("spooled-2")])
            .unwrap();

        let metrics = Metrics::new();
        let spool = AuditSpool::open(&spool_folder, metrics.clone()).unwrap();
        let (sink, writer) = audit_queue(db.clone(), spool, metrics.clone());
        let closing = CancellationToken::new();
        let task = tokio::spawn(writer.run(closing.clone()));
        for i in 0..1_200 {
            sink.record(record(&format!("r{i}"))).await;
        }
        closing.cancel();
        task.await.unwrap();

        let Database::Sqlite(pool) = &db else {
            unreachable!()
        };
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM partner_feed_audit")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(count, 1_202);
        assert_eq!(metrics.audit_spooled_records.get(), 0);
        assert!(fs::read_dir(&spool_folder).unwrap().next().is_none());
    }
}
