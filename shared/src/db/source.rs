//! The consistent read of `indicators` that one snapshot is built from.
//!
//! Every query of a [`SourceRead`] runs in one read-only transaction, so the totals and the
//! streamed rows describe the same state of the table. PostgreSQL gets `REPEATABLE READ`;
//! SQLite in WAL mode gives a read transaction a stable view of the database until it ends.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::{Postgres, Sqlite, Transaction};

use super::{Database, DbError, IndicatorRow, QueryContext, INDICATOR_COLUMNS};
use crate::indicator::Indicator;
use crate::tlp::Tlp;

/// Totals of the whole `indicators` table, `TLP:RED` rows included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSummary {
    /// Number of rows.
    pub row_count: u64,
    /// Number of rows that are not `TLP:RED`, which is what a snapshot's index holds.
    pub publishable_count: u64,
    /// Largest `updated_at`, or `None` when the table is empty.
    pub watermark: Option<DateTime<Utc>>,
}

/// An open read-only transaction on `indicators`.
#[derive(Debug)]
pub struct SourceRead {
    transaction: SourceTransaction,
}

#[derive(Debug)]
enum SourceTransaction {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Publish order on SQLite, whose default `BINARY` collation compares bytes.
static SQLITE_STREAM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE tlp <> 'TLP:RED' \
         ORDER BY updated_at DESC, indicator_id"
    )
});

/// Publish order on PostgreSQL: `COLLATE "C"` compares bytes as SQLite does, whatever the
/// database's default collation is.
static POSTGRES_STREAM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE tlp <> 'TLP:RED' \
         ORDER BY updated_at DESC, indicator_id COLLATE \"C\""
    )
});

const SUMMARY_SQL: &str = "SELECT COUNT(*) AS row_count, \
     COUNT(CASE WHEN tlp <> 'TLP:RED' THEN 1 END) AS publishable_count, \
     MAX(updated_at) AS watermark FROM indicators";

impl SourceRead {
    /// Opens the read-only transaction.
    pub async fn begin(db: &Database) -> Result<SourceRead, DbError> {
        let action = || "starting the consistent read of indicators".to_owned();
        let transaction = match db {
            Database::Sqlite(pool) => SourceTransaction::Sqlite(pool.begin().await.action(action)?),
            Database::Postgres(pool) => {
                let mut transaction = pool.begin().await.action(action)?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *transaction)
                    .await
                    .action(action)?;
                SourceTransaction::Postgres(transaction)
            }
        };
        Ok(SourceRead { transaction })
    }

    /// Counts the rows and reads the watermark.
    pub async fn summary(&mut self) -> Result<SourceSummary, DbError> {
        let action = || "counting indicators".to_owned();
        let (row_count, publishable_count, watermark): (i64, i64, Option<DateTime<Utc>>) =
            match &mut self.transaction {
                SourceTransaction::Sqlite(transaction) => sqlx::query_as(SUMMARY_SQL)
                    .fetch_one(&mut **transaction)
                    .await
                    .action(action)?,
                SourceTransaction::Postgres(transaction) => sqlx::query_as(SUMMARY_SQL)
                    .fetch_one(&mut **transaction)
                    .await
                    .action(action)?,
            };
        Ok(SourceSummary {
            row_count: to_count(row_count),
            publishable_count: to_count(publishable_count),
            watermark,
        })
    }

    /// Counts the active rows whose TLP is at or below `highest`.
    pub async fn count_active_up_to(&mut self, highest: Tlp) -> Result<u64, DbError> {
        let levels: Vec<&str> = Tlp::ALL
            .into_iter()
            .filter(|level| *level <= highest && *level != Tlp::Red)
            .map(Tlp::as_str)
            .collect();
        let placeholders: Vec<String> = (1..=levels.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT COUNT(*) FROM indicators WHERE status = 'active' AND tlp IN ({})",
            placeholders.join(", ")
        );
        let action = || format!("counting active indicators up to {highest}");
        let count: i64 = match &mut self.transaction {
            SourceTransaction::Sqlite(transaction) => {
                let mut query = sqlx::query_scalar(&sql);
                for level in &levels {
                    query = query.bind(*level);
                }
                query.fetch_one(&mut **transaction).await.action(action)?
            }
            SourceTransaction::Postgres(transaction) => {
                let mut query = sqlx::query_scalar(&sql);
                for level in &levels {
                    query = query.bind(*level);
                }
                query.fetch_one(&mut **transaction).await.action(action)?
            }
        };
        Ok(to_count(count))
    }

    /// Streams every row that is not `TLP:RED` in publish order: `updated_at` descending, then
    /// `indicator_id` by bytes. Rows are decoded one at a time as the caller polls.
    pub fn indicators(&mut self) -> BoxStream<'_, Result<Indicator, DbError>> {
        let rows: BoxStream<'_, Result<IndicatorRow, sqlx::Error>> = match &mut self.transaction {
            SourceTransaction::Sqlite(transaction) => {
                sqlx::query_as(SQLITE_STREAM_SQL.as_str()).fetch(&mut **transaction)
            }
            SourceTransaction::Postgres(transaction) => {
                sqlx::query_as(POSTGRES_STREAM_SQL.as_str()).fetch(&mut **transaction)
            }
        };
        rows.map_err(|source| DbError::Query {
            action: "reading indicators".to_owned(),
            source,
        })
        .and_then(|row| futures::future::ready(Indicator::try_from(row)))
        .boxed()
    }

    /// Ends the transaction. Nothing was written, so it is rolled back.
    pub async fn finish(self) -> Result<(), DbError> {
        let action = || "ending the consistent read of indicators".to_owned();
        match self.transaction {
            SourceTransaction::Sqlite(transaction) => transaction.rollback().await.action(action),
            SourceTransaction::Postgres(transaction) => transaction.rollback().await.action(action),
        }
    }
}

fn to_count(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}
