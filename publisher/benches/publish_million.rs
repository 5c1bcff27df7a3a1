//! Publishes a generated set of indicators (`PUBLISH_BENCH_ROWS`, by default
//! 1,000,000) from SQLite to a local folder and prints the time and the peak memory of the run.
//!
//! Run with `cargo bench -p partner-feed-publisher --bench publish_million`. On Linux, the
//! peak resident set size is read from `/proc/self/status` (`VmHWM`) after resetting it through
//! `/proc/self/clear_refs`, so the figure covers the publish alone, not the loading of the rows.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use partner_feed_publisher::{Publisher, RunOutcome};
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::Database;
use partner_feed_shared::on_pool;
use tokio_util::sync::CancellationToken;

/// Rows loaded when `PUBLISH_BENCH_ROWS` is not set.
const DEFAULT_ROWS: usize = 1_000_000;

/// Rows loaded when the benchmark runs as part of the tests.
const SMOKE_ROWS: usize = 2_000;

const TYPES: [&str; 10] = [
    "url",
    "domain",
    "ipv4",
    "ipv6",
    "email",
    "phone",
    "crypto_wallet",
    "md5",
    "sha1",
    "sha256",
];

const TLPS: [&str; 5] = [
    "TLP:CLEAR",
    "TLP:GREEN",
    "TLP:AMBER",
    "TLP:AMBER+STRICT",
    "TLP:RED",
];

const CATEGORIES: [&str; 4] = [
    "phishing",
    "investment_scam",
    "crypto_drainer",
    "malware_download",
];

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs benchmarks without `--bench`: a small set then checks
    // that the benchmark still works without making the test run long.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let rows = std::env::var("PUBLISH_BENCH_ROWS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(if measuring { DEFAULT_ROWS } else { SMOKE_ROWS });
    let folder = tempfile::tempdir().expect("temporary folder");
    let db_url = format!("sqlite://{}", folder.path().join("bench.db").display());
    let db = Database::connect(&db_url).await.expect("open the database");
    db.migrate().await.expect("migrate the database");

    let loading = Instant::now();
    load_rows(&db, rows).await;
    println!(
        "loaded {rows} indicators in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let objects = folder.path().join("objects");
    std::fs::create_dir_all(&objects).expect("objects folder");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&objects).expect("local store"));
    let mut settings = Settings::default();
    settings.database.url = db_url;
    let publisher = Publisher::new(&settings, db.clone(), store);

    let rss_before_kib = memory_kib("VmRSS");
    let peak_was_reset = reset_peak_memory();
    let started = Instant::now();
    let outcome = publisher
        .publish_once(&CancellationToken::new())
        .await
        .expect("publish");
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = memory_kib("VmHWM");

    let RunOutcome::Published {
        indicators,
        pages,
        bytes,
        ..
    } = outcome
    else {
        panic!("expected a published snapshot, got {outcome:?}");
    };
    println!("published {indicators} index records, {pages} pages per format, {bytes} bytes");
    println!(
        "publish time: {seconds:.1} s ({:.0} indicators/s)",
        indicators as f64 / seconds
    );
    println!(
        "resident memory before the publish: {} MiB",
        rss_before_kib.unwrap_or(0) / 1024
    );
    match (peak_kib, peak_was_reset) {
        (Some(peak), true) => println!(
            "peak resident memory during the publish: {} MiB",
            peak / 1024
        ),
        (Some(peak), false) => println!(
            "peak resident memory of the process (loading included, reset not supported): {} MiB",
            peak / 1024
        ),
        (None, _) => println!("peak resident memory: unknown (no /proc/self/status)"),
    }
    db.close().await;
}

/// Inserts `rows` generated indicators in one transaction.
async fn load_rows(db: &Database, rows: usize) {
    let base: DateTime<Utc> = "2025-04-21T12:00:00Z".parse().unwrap();
    let sql = "INSERT INTO indicators (indicator_id, indicator_type, value, category, risk_score, \
               confidence, tlp, tags, description, first_seen, last_seen, created_at, updated_at, status) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
    on_pool!(db, pool => {
        let mut transaction = pool.begin().await.expect("begin");
        for n in 0..rows {
            let updated_at = base - Duration::seconds(n as i64);
            sqlx::query(sql)
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(TYPES[n % TYPES.len()])
                .bind(format!("https://bench{n}.example/login/{}", n * 7919))
                .bind(CATEGORIES[n % CATEGORIES.len()])
                .bind((n % 1001) as f64 / 10.0)
                .bind((n % 101) as i32)
                .bind(TLPS[(n / 10) % TLPS.len()])
                .bind(sqlx::types::Json(["bench", "generated"]))
                .bind(format!("Generated indicator {n} for the publisher benchmark"))
                .bind(updated_at - Duration::days(2))
                .bind(updated_at - Duration::hours(1))
                .bind(updated_at - Duration::days(1))
                .bind(updated_at)
                .bind(if n % 13 == 0 { "revoked" } else { "active" })
                .execute(&mut *transaction)
                .await
                .expect("insert");
        }
        transaction.commit().await.expect("commit");
    });
}

/// Resets the process's peak resident set size (`VmHWM`); returns false where Linux does not
/// allow it.
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Returns a `/proc/self/status` field in KiB, such as `VmRSS` or `VmHWM`.
fn memory_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}
