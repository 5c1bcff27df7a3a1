//! Queries on `indicators` and the mapping of its rows to [`Indicator`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Database, DbError, Dialect, Placeholders, QueryContext};
use crate::indicator::{Indicator, IndicatorType};

/// Columns of `indicators` in the order [`IndicatorRow`] reads them.
pub const INDICATOR_COLUMNS: &str = "indicator_id, indicator_type, value, category, risk_score, \
     CAST(confidence AS INTEGER) AS confidence, tlp, tags, description, first_seen, last_seen, created_at, updated_at, status";

/// One row of `indicators` as the driver returns it.
#[derive(Debug, sqlx::FromRow)]
pub struct IndicatorRow {
    /// `indicator_id`.
    pub indicator_id: String,
    /// `indicator_type`.
    pub indicator_type: String,
    /// `value`.
    pub value: String,
    /// `category`.
    pub category: String,
    /// `risk_score`.
    pub risk_score: Option<f64>,
    /// `confidence`.
    pub confidence: Option<i32>,
    /// `tlp`.
    pub tlp: String,
    /// `tags`.
    pub tags: Json<Vec<String>>,
    /// `description`.
    pub description: Option<String>,
    /// `first_seen`.
    pub first_seen: DateTime<Utc>,
    /// `last_seen`.
    pub last_seen: DateTime<Utc>,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
    /// `updated_at`.
    pub updated_at: DateTime<Utc>,
    /// `status`.
    pub status: String,
}

impl TryFrom<IndicatorRow> for Indicator {
    type Error = DbError;

    fn try_from(row: IndicatorRow) -> Result<Self, Self::Error> {
        let decode = |column: &str, reason: String| DbError::Decode {
            column: format!("indicators.{column} of {}", row.indicator_id),
            reason,
        };
        Ok(Indicator {
            indicator_type: row
                .indicator_type
                .parse()
                .map_err(|e| decode("indicator_type", format!("{e}")))?,
            tlp: row.tlp.parse().map_err(|e| decode("tlp", format!("{e}")))?,
            status: row
                .status
                .parse()
                .map_err(|e| decode("status", format!("{e}")))?,
            id: row.indicator_id,
            value: row.value,
            category: row.category,
            risk_score: row.risk_score,
            confidence: row.confidence,
            tags: row.tags.0,
            description: row.description,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An open transaction that looks up and writes one import batch of indicators.
///
/// On SQLite it starts with `BEGIN IMMEDIATE`, so the write lock is taken before the lookup and
/// no other writer can change the looked-up rows before the batch writes.
pub struct IndicatorBatch<'c> {
    transaction: BatchTransaction<'c>,
}

enum BatchTransaction<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

/// Runs the same expression with `$connection` bound to the connection of either transaction.
macro_rules! on_transaction {
    ($transaction:expr, $connection:ident => $body:expr) => {
        match $transaction {
            BatchTransaction::Sqlite(transaction) => {
                let $connection = &mut **transaction;
                $body
            }
            BatchTransaction::Postgres(transaction) => {
                let $connection = &mut **transaction;
                $body
            }
        }
    };
}

/// Columns written by [`IndicatorBatch::insert`], in bind order.
const INSERT_COLUMNS: &str =
    "indicator_id, indicator_type, value, category, risk_score, confidence, tlp, \
     tags, description, first_seen, last_seen, created_at, updated_at, status";

impl Database {
    /// Starts the transaction of one import batch on a connection from the pool.
    pub async fn begin_indicator_batch(&self) -> Result<IndicatorBatch<'static>, DbError> {
        let transaction = match self {
            Database::Sqlite(pool) => pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(BatchTransaction::Sqlite),
            Database::Postgres(pool) => pool.begin().await.map(BatchTransaction::Postgres),
        }
        .action(|| "starting an import transaction".to_owned())?;
        Ok(IndicatorBatch { transaction })
    }

    /// Takes one connection for a whole import, on which [`IndicatorWriter::begin_batch`] runs each batch.
    pub async fn indicator_writer(&self) -> Result<IndicatorWriter, DbError> {
        let connection = match self {
            Database::Sqlite(pool) => sqlite_writer(pool).await.map(WriterConnection::Sqlite),
            Database::Postgres(pool) => pool.acquire().await.map(WriterConnection::Postgres),
        }
        .action(|| "opening a connection for the import".to_owned())?;
        Ok(IndicatorWriter { connection })
    }
}

/// Page cache of the SQLite connection that writes an import, in KiB.
///
/// The primary key and the `(indicator_type, value)` index take random inserts, so with SQLite's
/// default 2 MiB cache a large import rereads index pages from the file for most rows.
const SQLITE_IMPORT_CACHE_KIB: i64 = 64 * 1024;

/// Takes a connection out of the pool and enlarges its page cache.
///
/// The connection is detached, so the enlarged cache is freed when the import ends instead of
/// staying with a pooled connection.
async fn sqlite_writer(pool: &sqlx::SqlitePool) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let mut connection = pool.acquire().await?.detach();
    let pragma = format!("PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}");
    sqlx::query(&pragma).execute(&mut connection).await?;
    Ok(connection)
}

/// One database connection that writes the batches of an import in turn.
pub struct IndicatorWriter {
    connection: WriterConnection,
}

enum WriterConnection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl IndicatorWriter {
    /// Starts the transaction of the next batch (`BEGIN IMMEDIATE` on SQLite, as for
    /// [`Database::begin_indicator_batch`]).
    pub async fn begin_batch(&mut self) -> Result<IndicatorBatch<'_>, DbError> {
        let transaction = match &mut self.connection {
            WriterConnection::Sqlite(connection) => {
                sqlx::Connection::begin_with(connection, "BEGIN IMMEDIATE")
                    .await
                    .map(BatchTransaction::Sqlite)
            }
            WriterConnection::Postgres(connection) => sqlx::Connection::begin(&mut **connection)
                .await
                .map(BatchTransaction::Postgres),
        }
        .action(|| "starting an import transaction".to_owned())?;
        Ok(IndicatorBatch { transaction })
    }

    /// Closes the connection (SQLite) or returns it to the pool (PostgreSQL).
    pub async fn close(self) -> Result<(), DbError> {
        match self.connection {
            WriterConnection::Sqlite(connection) => sqlx::Connection::close(connection)
                .await
                .action(|| "closing the import connection".to_owned()),
            WriterConnection::Postgres(_) => Ok(()),
        }
    }
}

impl IndicatorBatch<'_> {
    /// Returns the stored indicators whose `(indicator_type, value)` is in `keys` or whose id is in `ids`.
    ///
    /// One statement does the lookup: a `UNION ALL` of one `indicator_type = … AND value IN (…)`
    /// select per type, which both databases serve from the unique index (SQLite scans the
    /// whole table for a row-value `IN`), plus one select by id. A row matching several appears
    /// once. `keys` and `ids` must each hold at most [`BATCH_SIZE`](crate::import::BATCH_SIZE)
    /// entries.
    pub async fn find_by_keys_or_ids(
        &mut self,
        keys: &[(IndicatorType, &str)],
        ids: &[&str],
    ) -> Result<Vec<Indicator>, DbError> {
        let mut values_by_type: BTreeMap<IndicatorType, Vec<&str>> = BTreeMap::new();
        for (kind, value) in keys {
            values_by_type.entry(*kind).or_default().push(value);
        }
        let mut placeholders = Placeholders::new(self.dialect());
        let mut selects = Vec::new();
        for values in values_by_type.values() {
            selects.push(format!(
                "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE indicator_type = {} AND value IN {}",
                placeholders.next(),
                placeholders.tuples(1, values.len())
            ));
        }
        if !ids.is_empty() {
            selects.push(format!(
                "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE indicator_id IN {}",
                placeholders.tuples(1, ids.len())
            ));
        }
        if selects.is_empty() {
            return Ok(Vec::new());
        }
        let sql = selects.join(" UNION ALL ");

        let rows: Vec<IndicatorRow> = on_transaction!(&mut self.transaction, connection => {
            let mut query = sqlx::query_as(&sql);
            for (kind, values) in &values_by_type {
                query = query.bind(kind.as_str());
                for value in values {
                    query = query.bind(*value);
                }
            }
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(connection).await
        })
        .action(|| {
            format!(
                "looking up {} indicators by type and value or id",
                keys.len()
            )
        })?;

        let mut seen_ids = HashSet::new();
        let mut indicators: Vec<Indicator> = Vec::with_capacity(rows.len());
        for row in rows {
            if seen_ids.insert(row.indicator_id.clone()) {
                indicators.push(Indicator::try_from(row)?);
            }
        }
        Ok(indicators)
    }

    /// Inserts `indicators` with one multi-row `INSERT`.
    ///
    /// NOTE: on PostgreSQL another writer can insert the same `(indicator_type, value)` between
    /// the lookup and this insert. The unique constraint then fails the batch and stops the
    /// import; running it again treats that row as stored.
    pub async fn insert(&mut self, indicators: &[Indicator]) -> Result<(), DbError> {
        if indicators.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO indicators ({INSERT_COLUMNS}) VALUES {}",
            Placeholders::new(self.dialect()).tuples(indicators.len(), 14)
        );
        on_transaction!(&mut self.transaction, connection => {
            let mut query = sqlx::query(&sql);
            for row in indicators {
                query = query
                    .bind(&row.id)
                    .bind(row.indicator_type.as_str())
                    .bind(&row.value)
                    .bind(&row.category)
                    .bind(row.risk_score)
                    .bind(row.confidence)
                    .bind(row.tlp.as_str())
                    .bind(Json(&row.tags))
                    .bind(&row.description)
                    .bind(row.first_seen)
                    .bind(row.last_seen)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .bind(row.status.as_str());
            }
            query.execute(connection).await.map(|_| ())
        })
        .action(|| format!("inserting {} indicators", indicators.len()))
    }

    /// Rewrites every field but the id, type, value and `created_at` of `indicators`, matched by
    /// id, with one multi-row `UPDATE … FROM (VALUES …)`.
    pub async fn update(&mut self, indicators: &[Indicator]) -> Result<(), DbError> {
        if indicators.is_empty() {
            return Ok(());
        }
        // SQLite and PostgreSQL both name the columns of a VALUES list column1, column2, …
        let sql = format!(
            "UPDATE indicators SET category = v.column2, risk_score = v.column3, \
             confidence = v.column4, tlp = v.column5, tags = v.column6, description = v.column7, \
             first_seen = v.column8, last_seen = v.column9, updated_at = v.column10, \
             status = v.column11 FROM (VALUES {}) AS v WHERE indicators.indicator_id = v.column1",
            Placeholders::new(self.dialect()).tuples(indicators.len(), 11)
        );
        on_transaction!(&mut self.transaction, connection => {
            let mut query = sqlx::query(&sql);
            for row in indicators {
                query = query
                    .bind(&row.id)
                    .bind(&row.category)
                    .bind(row.risk_score)
                    .bind(row.confidence)
                    .bind(row.tlp.as_str())
                    .bind(Json(&row.tags))
                    .bind(&row.description)
                    .bind(row.first_seen)
                    .bind(row.last_seen)
                    .bind(row.updated_at)
                    .bind(row.status.as_str());
            }
            query.execute(connection).await.map(|_| ())
        })
        .action(|| format!("updating {} indicators", indicators.len()))
    }

    fn dialect(&self) -> Dialect {
        match self.transaction {
            BatchTransaction::Sqlite(_) => Dialect::Sqlite,
            BatchTransaction::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Commits the batch.
    pub async fn commit(self) -> Result<(), DbError> {
        match self.transaction {
            BatchTransaction::Sqlite(transaction) => transaction.commit().await,
            BatchTransaction::Postgres(transaction) => transaction.commit().await,
        }
        .action(|| "committing an import batch".to_owned())
    }
}
