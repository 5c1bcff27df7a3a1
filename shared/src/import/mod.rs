//! Bulk import of indicators from files: the feed's CSV, NDJSON and URLhaus dumps, plain or gzip.
//!
//! The file is read as a stream on a blocking thread and handed over in batches of
//! [`BATCH_SIZE`] rows. Each batch is one transaction: one query finds the stored rows sharing a
//! `(indicator_type, value)` or an id with the batch, the comparison happens in memory, then one
//! multi-row `INSERT` and one multi-row `UPDATE` write what changed. Memory therefore depends on
//! the batch size, not on the file size. A row that fails validation is reported with its line
//! number and skipped; the rest of the file still loads.

mod lines;
mod merge;
mod native_csv;
mod ndjson;
mod record;
mod urlhaus;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{SubsecRound, Utc};
use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;

use crate::db::{Database, DbError, IndicatorWriter};
use crate::indicator::IndicatorType;
use merge::{plan_batch, BatchPlan};
use native_csv::NativeCsvReader;
use ndjson::NdjsonReader;
use record::IndicatorRecord;
use urlhaus::UrlhausReader;

pub use lines::MAX_RECORD_BYTES;
pub use native_csv::CSV_COLUMNS;
pub use record::{parse_timestamp, InvalidTimestamp};

/// Rows written per transaction. With 14 columns an insert binds 14,000 parameters, below the
/// limits of SQLite (32,766) and PostgreSQL (65,535).
pub const BATCH_SIZE: usize = 1000;

/// Batches parsed ahead of the database writer.
const BATCHES_IN_FLIGHT: usize = 2;

/// Buffer size for reading the file and its decompressed content.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// The feed's own CSV, with the header [`CSV_COLUMNS`].
    Csv,
    /// One feed JSON record (camelCase fields) per line.
    Ndjson,
    /// An abuse.ch URLhaus CSV dump.
    Urlhaus,
}

/// Error returned when a text is not a supported import format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid import format {0:?}: expected csv, ndjson or urlhaus")]
pub struct InvalidImportFormat(pub String);

impl FromStr for ImportFormat {
    type Err = InvalidImportFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "csv" => Ok(ImportFormat::Csv),
            "ndjson" => Ok(ImportFormat::Ndjson),
            "urlhaus" => Ok(ImportFormat::Urlhaus),
            _ => Err(InvalidImportFormat(text.to_owned())),
        }
    }
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImportFormat::Csv => "csv",
            ImportFormat::Ndjson => "ndjson",
            ImportFormat::Urlhaus => "urlhaus",
        })
    }
}

/// Row counts of one import, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    /// Rows that created an indicator.
    pub inserted: u64,
    /// Rows that changed a stored indicator (or one inserted earlier from the same file).
    pub updated: u64,
    /// Rows equal to what was already stored; nothing was written for them.
    pub unchanged: u64,
    /// Rows skipped because they are invalid or conflict with a stored indicator.
    pub rejected: u64,
}

/// A skipped row of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Line number in the file, from 1; for a quoted field spanning lines, the first line.
    pub line: u64,
    /// Reason the row was skipped.
    pub reason: String,
}

/// Error that stops an import. Rows of batches committed before it stay imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be opened.
    #[error("failed to open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or decompressing the file failed.
    #[error("failed to read the file")]
    Read(#[source] std::io::Error),
    /// The file does not start with the header its format needs.
    #[error("invalid header: {reason}")]
    Header {
        /// Description of the problem, with the expected header.
        reason: String,
    },
    /// A quoted field opened on `line` is still open after [`MAX_RECORD_BYTES`] bytes.
    #[error("line {line}: quoted field is not closed within {MAX_RECORD_BYTES} bytes")]
    UnclosedQuote {
        /// Line where the record starts.
        line: u64,
    },
    /// Reading from or writing to the database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The thread reading the file stopped without a result.
    #[error("the file reader thread failed")]
    ReaderFailed(#[source] tokio::task::JoinError),
}

/// One row of a file: its line number and the validated record or why it is invalid.
pub(crate) struct ParsedRow {
    pub line: u64,
    pub result: Result<IndicatorRecord, String>,
}

/// Rows handed from the file reader to the database writer.
#[derive(Default)]
struct Batch {
    rows: Vec<(u64, IndicatorRecord)>,
    rejections: Vec<Rejection>,
}

/// Imports `path` in `format` into the indicators table and returns the counts.
///
/// `on_rejection` is called for every skipped row, in line order within each batch. A `.gz`
/// file, or any file starting with the gzip magic bytes, is decompressed while it is read.
pub async fn import_file(
    db: &Database,
    path: &Path,
    format: ImportFormat,
    mut on_rejection: impl FnMut(&Rejection),
) -> Result<ImportCounts, ImportError> {
    let input = open_input(path)?;
    let (sender, mut receiver) = mpsc::channel(BATCHES_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || read_batches(input, format, sender));

    let mut writer = db.indicator_writer().await?;
    let mut counts = ImportCounts::default();
    while let Some(batch) = receiver.recv().await {
        let mut rejections = batch.rejections;
        let plan = write_batch(&mut writer, batch.rows).await?;
        rejections.extend(plan.rejections);
        rejections.sort_by_key(|rejection| rejection.line);
        for rejection in &rejections {
            on_rejection(rejection);
        }

        counts.inserted += plan.counts.inserted;
        counts.updated += plan.counts.updated;
        counts.unchanged += plan.counts.unchanged;
        counts.rejected += rejections.len() as u64;
        tracing::debug!(
            inserted = counts.inserted,
            updated = counts.updated,
            unchanged = counts.unchanged,
            rejected = counts.rejected,
            "import batch committed"
        );
    }

    writer.close().await?;
    reader.await.map_err(ImportError::ReaderFailed)??;
    Ok(counts)
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>, ImportError> {
    let open_error = |source| ImportError::Open {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(open_error)?;
    let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let has_gz_extension = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
    let has_gzip_magic = buffered
        .fill_buf()
        .map_err(ImportError::Read)?
        .starts_with(&[0x1f, 0x8b]);
    if has_gz_extension || has_gzip_magic {
        let decoder = MultiGzDecoder::new(buffered);
        return Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            decoder,
        )));
    }
    Ok(Box::new(buffered))
}

/// Readers of the supported formats behind one `next_row`.
enum RowSource<R> {
    Csv(NativeCsvReader<R>),
    Ndjson(NdjsonReader<R>),
    Urlhaus(UrlhausReader<R>),
}

impl<R: BufRead> RowSource<R> {
    fn open(input: R, format: ImportFormat) -> Result<Self, ImportError> {
        Ok(match format {
            ImportFormat::Csv => RowSource::Csv(NativeCsvReader::new(input)?),
            ImportFormat::Ndjson => RowSource::Ndjson(NdjsonReader::new(input)),
            ImportFormat::Urlhaus => RowSource::Urlhaus(UrlhausReader::new(input)?),
        })
    }

    fn next_row(&mut self) -> Result<Option<ParsedRow>, ImportError> {
        match self {
            RowSource::Csv(reader) => reader.next_row(),
            RowSource::Ndjson(reader) => reader.next_row(),
            RowSource::Urlhaus(reader) => reader.next_row(),
        }
    }
}

/// Reads the whole file and sends it in batches; stops early when the writer has gone away.
fn read_batches(
    input: Box<dyn BufRead + Send>,
    format: ImportFormat,
    sender: mpsc::Sender<Batch>,
) -> Result<(), ImportError> {
    let mut source = RowSource::open(input, format)?;
    let mut batch = Batch::default();
    while let Some(row) = source.next_row()? {
        match row.result {
            Ok(record) => batch.rows.push((row.line, record)),
            Err(reason) => batch.rejections.push(Rejection {
                line: row.line,
                reason,
            }),
        }
        let full = batch.rows.len() >= BATCH_SIZE || batch.rejections.len() >= BATCH_SIZE;
        if full && sender.blocking_send(std::mem::take(&mut batch)).is_err() {
            return Ok(());
        }
    }
    if !batch.rows.is_empty() || !batch.rejections.is_empty() {
        let _ = sender.blocking_send(batch);
    }
    Ok(())
}

/// Looks up, compares and writes one batch in one transaction.
async fn write_batch(
    writer: &mut IndicatorWriter,
    rows: Vec<(u64, IndicatorRecord)>,
) -> Result<BatchPlan, DbError> {
    if rows.is_empty() {
        return Ok(BatchPlan::default());
    }
    let mut keys: Vec<(IndicatorType, &str)> = rows
        .iter()
        .map(|(_, record)| (record.indicator_type, record.value.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut ids: Vec<&str> = rows
        .iter()
        .filter_map(|(_, record)| record.id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();

    let mut transaction = writer.begin_batch().await?;
    let stored = transaction.find_by_keys_or_ids(&keys, &ids).await?;
    let now = Utc::now().trunc_subsecs(6);
    let plan = plan_batch(rows, stored, now);
    transaction.insert(&plan.inserts).await?;
    transaction.update(&plan.updates).await?;
    transaction.commit().await?;
    Ok(plan)
}
