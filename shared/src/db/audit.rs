//! Inserts into `partner_feed_audit`, one multi-row statement per batch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::{Database, DbError, Dialect, Placeholders, QueryContext};
use crate::on_pool;

/// One row of `partner_feed_audit`: a feed request and its outcome. It never contains a raw key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique id (UUID text) chosen by the writer, so that a retried insert is ignored.
    pub audit_id: String,
    /// Key that was presented, when it is known.
    pub key_id: Option<String>,
    /// Partner of that key.
    pub partner_name: Option<String>,
    /// First eight characters of the presented key, known or not.
    pub key_prefix: Option<String>,
    /// Request path, such as `/feeds/indicators`.
    pub endpoint: String,
    /// HTTP method.
    pub method: String,
    /// The parsed query as a JSON object.
    pub query_params: serde_json::Value,
    /// Number of indicators in the response, when one was served.
    pub result_count: Option<i64>,
    /// HTTP status code sent.
    pub response_code: i32,
    /// Client address after `X-Forwarded-For` handling.
    pub ip_address: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Snapshot the response came from.
    pub snapshot_id: Option<String>,
    /// Time from receiving the request to sending the response head, in milliseconds.
    pub latency_ms: f64,
    /// Time the request was received.
    pub created_at: DateTime<Utc>,
}

/// Columns bound per record by [`Database::insert_audit_records`].
const AUDIT_COLUMNS: [&str; 14] = [
    "audit_id",
    "key_id",
    "partner_name",
    "key_prefix",
    "endpoint",
    "method",
    "query_params",
    "result_count",
    "response_code",
    "ip_address",
    "user_agent",
    "snapshot_id",
    "latency_ms",
    "created_at",
];

/// Largest number of records written by one statement; SQLite allows 32,766 bound parameters.
pub const MAX_AUDIT_BATCH: usize = 500;

impl Database {
    /// Inserts audit records; a record whose `audit_id` is already stored is skipped.
    ///
    /// Returns the number of rows inserted. Batches longer than [`MAX_AUDIT_BATCH`] are split.
    pub async fn insert_audit_records(&self, records: &[AuditRecord]) -> Result<u64, DbError> {
        let mut inserted = 0;
        for batch in records.chunks(MAX_AUDIT_BATCH) {
            inserted += self.insert_audit_batch(batch).await?;
        }
        Ok(inserted)
    }

    async fn insert_audit_batch(&self, batch: &[AuditRecord]) -> Result<u64, DbError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let sql = insert_statement(self.dialect(), batch.len());
        on_pool!(self, pool => {
            let mut query = sqlx::query(&sql);
            for record in batch {
                query = query
                    .bind(&record.audit_id)
                    .bind(&record.key_id)
                    .bind(&record.partner_name)
                    .bind(&record.key_prefix)
                    .bind(&record.endpoint)
                    .bind(&record.method)
                    .bind(Json(&record.query_params))
                    .bind(record.result_count)
                    .bind(record.response_code)
                    .bind(&record.ip_address)
                    .bind(&record.user_agent)
                    .bind(&record.snapshot_id)
                    .bind(record.latency_ms)
                    .bind(record.created_at);
            }
            query.execute(pool).await.map(|done| done.rows_affected())
        })
        .action(|| format!("writing {} audit records", batch.len()))
    }
}

fn insert_statement(dialect: Dialect, rows: usize) -> String {
    let values = Placeholders::new(dialect).tuples(rows, AUDIT_COLUMNS.len());
    format!(
        "INSERT INTO partner_feed_audit ({}) VALUES {values} ON CONFLICT (audit_id) DO NOTHING",
        AUDIT_COLUMNS.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(audit_id: &str) -> AuditRecord {
        AuditRecord {
            audit_id: audit_id.to_owned(),
            key_id: None,
            partner_name: None,
            key_prefix: Some("abcdefgh".to_owned()),
            endpoint: "/feeds/indicators".to_owned(),
            method: "GET".to_owned(),
            query_params: serde_json::json!({"page": 2}),
            result_count: Some(3),
            response_code: 200,
            ip_address: Some("127.0.0.1".to_owned()),
            user_agent: None,
            snapshot_id: Some("s1".to_owned()),
            latency_ms: 1.5,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn statement_numbers_placeholders_per_row() {
        let sql = insert_statement(Dialect::Postgres, 2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"));
        assert!(sql.contains("($15, $16,"));
        assert!(sql.ends_with("($15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28) ON CONFLICT (audit_id) DO NOTHING"));
    }

    #[test]
    fn sqlite_statement_uses_anonymous_placeholders() {
        let sql = insert_statement(Dialect::Sqlite, 2);
        let row = format!("({})", ["?"; 14].join(", "));
        assert!(
            sql.contains(&format!("VALUES {row}, {row} ON CONFLICT")),
            "{sql}"
        );
        assert!(!sql.contains('$'), "{sql}");
    }

    #[tokio::test]
    async fn repeated_insert_of_same_records_adds_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let db = Database::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let records: Vec<AuditRecord> = (0..1200).map(|i| record(&format!("a{i}"))).collect();

        let first = db.insert_audit_records(&records).await.unwrap();
        let second = db.insert_audit_records(&records[..700]).await.unwrap();

        assert_eq!(first, 1200);
        assert_eq!(second, 0);
        let Database::Sqlite(pool) = &db else {
            unreachable!()
        };
        let (count, code, params): (i64, i64, String) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM partner_feed_audit), response_code, query_params \
             FROM partner_feed_audit WHERE audit_id = 'a5'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(count, 1200);
        assert_eq!(code, 200);
        assert_eq!(params, r#"{"page":2}"#);
        db.close().await;
    }
}
