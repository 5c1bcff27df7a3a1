//! `spawn_app` and the typed helpers every API test uses: its own database, store folder, spool and port.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use reqwest::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use futures::TryStreamExt;
use partner_feed_edge::{Application, EdgeError, EdgeOptions};
use partner_feed_publisher::{Publisher, RunOutcome};
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::{Database, NewPartnerKey, PartnerKey};
use partner_feed_shared::keys::RawKey;
use partner_feed_shared::storage::open_store;
use partner_feed_shared::{Indicator, IndicatorType, Status, Tlp};

/// Database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Categories of the generated indicators.
pub const CATEGORIES: [&str; 4] = [
    "phishing",
    "investment_scam",
    "crypto_drainer",
    "malware_download",
];

/// Log lines of every test in this binary, for checks that no raw key is ever logged.
pub fn captured_logs() -> String {
    let buffer = log_buffer();
    let bytes = buffer.lock().unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer_buffer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("info,partner_feed_edge=debug,sqlx=warn")
            .with_ansi(false)
            .with_writer(move || BufferWriter(Arc::clone(&writer_buffer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buffer
    })
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running edge with its own database, store folder and audit spool.
pub struct TestApp {
    pub address: String,
    pub backend: Backend,
    pub db: Database,
    pub database_url: String,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub client: reqwest::Client,
    pub spool_dir: PathBuf,
    /// Time between two batched `last_used_at` writes, read at each start.
    pub key_use_flush_interval: Duration,
    cancel: CancellationToken,
    server: Option<JoinHandle<Result<(), EdgeError>>>,
    _dir: tempfile::TempDir,
}

/// What to prepare before the edge starts.
pub struct Setup {
    pub backend: Backend,
    pub indicators: Vec<Indicator>,
    pub publish: bool,
    pub configure: Box<dyn FnOnce(&mut Settings) + Send>,
}

impl Setup {
    /// Describes a published snapshot of `indicators` on `backend`, with test settings.
    pub fn new(backend: Backend, indicators: Vec<Indicator>) -> Setup {
        Setup {
            backend,
            indicators,
            publish: true,
            configure: Box::new(|_| {}),
        }
    }

    pub fn unpublished(mut self) -> Setup {
        self.publish = false;
        self
    }

    pub fn configure(mut self, configure: impl FnOnce(&mut Settings) + Send + 'static) -> Setup {
        self.configure = Box::new(configure);
        self
    }
}

/// Starts an edge on `backend` over a published snapshot of `indicators`.
///
/// Returns `None` when PostgreSQL is not installed and CI is not set (the testkit prints why).
pub async fn spawn_app(backend: Backend, indicators: Vec<Indicator>) -> Option<TestApp> {
    spawn_with(Setup::new(backend, indicators)).await
}

/// Starts an edge as `setup` describes.
pub async fn spawn_with(setup: Setup) -> Option<TestApp> {
    log_buffer();
    let dir = tempfile::tempdir().unwrap();
    let database_url = match setup.backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("feed.db").display()),
        Backend::Postgres => partner_feed_testkit::postgres()?.create_database(),
    };
    let db = Database::connect(&database_url).await.unwrap();
    db.migrate().await.unwrap();
    let store_url = format!("file://{}", dir.path().join("objects").display());
    let store = open_store(&store_url).unwrap();

    let mut settings = Settings::default();
    settings.database.url = database_url.clone();
    settings.storage.url = store_url;
    settings.edge.bind = "127.0.0.1:0".parse().unwrap();
    settings.edge.snapshot_poll_seconds = 1;
    settings.partner_feed.key_cache_ttl_seconds = 1;
    settings.partner_feed.default_page_size = 10;
    settings.partner_feed.rate_limit_per_minute = 10_000;
    (setup.configure)(&mut settings);

    let app_dir = dir;
    let spool_dir = app_dir.path().join("spool");
    let mut app = TestApp {
        address: String::new(),
        backend: setup.backend,
        db,
        database_url,
        store,
        settings,
        client: reqwest::Client::builder().no_gzip().build().unwrap(),
        spool_dir,
        key_use_flush_interval: EdgeOptions::default().key_use_flush_interval,
        cancel: CancellationToken::new(),
        server: None,
        _dir: app_dir,
    };
    if !setup.indicators.is_empty() {
        app.insert_indicators(&setup.indicators).await;
    }
    if setup.publish {
        app.publish().await;
    }
    app.start().await;
    Some(app)
}

impl TestApp {
    /// Builds and starts the edge (again, after [`TestApp::stop`]).
    pub async fn start(&mut self) {
        let options = EdgeOptions {
            audit_spool_dir: self.spool_dir.clone(),
            key_use_flush_interval: self.key_use_flush_interval,
        };
        let application = Application::build_with_options(
            self.settings.clone(),
            self.db.clone(),
            Arc::clone(&self.store),
            options,
        )
        .await
        .unwrap();
        self.address = format!("http://127.0.0.1:{}", application.port());
        self.cancel = CancellationToken::new();
        self.server = Some(tokio::spawn(
            application.run_until_stopped(self.cancel.clone()),
        ));
    }

    /// Stops the edge gracefully, as SIGTERM does, and waits until it has flushed the audit.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub async fn insert_indicators(&self, indicators: &[Indicator]) {
        let mut batch = self.db.begin_indicator_batch().await.unwrap();
        batch.insert(indicators).await.unwrap();
        batch.commit().await.unwrap();
    }

    /// Publishes a snapshot of the current indicators and returns its id.
    pub async fn publish(&self) -> String {
        let publisher = Publisher::new(&self.settings, self.db.clone(), Arc::clone(&self.store));
        match publisher
            .publish_once(&CancellationToken::new())
            .await
            .unwrap()
        {
            RunOutcome::Published { snapshot_id, .. } => snapshot_id,
            other => panic!("expected a published snapshot, got {other:?}"),
        }
    }

    /// Waits (up to 10 s) until unpinned requests are served from `snapshot_id`.
    pub async fn wait_for_snapshot(&self, snapshot_id: &str) {
        for _ in 0..100 {
            let ready: serde_json::Value = self
                .client
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ready["snapshotId"] == snapshot_id {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the edge did not switch to snapshot {snapshot_id}");
    }

    /// Deletes every object of a snapshot, as retention does.
    pub async fn delete_snapshot(&self, snapshot_id: &str) {
        let prefix = StorePath::from(format!("snapshots/{snapshot_id}"));
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.unwrap();
        assert!(!objects.is_empty(), "snapshot {snapshot_id} has no objects");
        for object in objects {
            self.store.delete(&object.location).await.unwrap();
        }
    }

    /// Creates a key with `scopes` and an optional rate limit; returns the raw key and the row.
    pub async fn create_key(
        &self,
        scopes: &[&str],
        rate_limit: Option<i64>,
    ) -> (RawKey, PartnerKey) {
        let raw = RawKey::generate();
        let key = self
            .db
            .insert_partner_key(
                &raw,
                &NewPartnerKey {
                    partner_name: "Example Bank".to_owned(),
                    scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
                    rate_limit_per_minute: rate_limit,
                    expires_at: None,
                    created_by: Some("tests".to_owned()),
                },
            )
            .await
            .unwrap();
        (raw, key)
    }

    /// Runs one SQL statement on the test database.
    pub async fn execute(&self, sql: &str) {
        match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            Database::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// Returns the number of audit rows.
    pub async fn audit_count(&self) -> i64 {
        self.scalar("SELECT COUNT(*) FROM partner_feed_audit").await
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.db {
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Returns every audit row, oldest first.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        let sql = "SELECT key_prefix, CAST(query_params AS TEXT) AS query_params, \
                   CAST(response_code AS BIGINT) AS response_code, key_id, endpoint, \
                   ip_address, snapshot_id FROM partner_feed_audit ORDER BY created_at";
        match &self.db {
            Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }

    /// Waits (up to 10 s) until the audit contains `expected` rows.
    pub async fn wait_for_audit_rows(&self, expected: i64) -> i64 {
        let mut count = 0;
        for _ in 0..100 {
            count = self.audit_count().await;
            if count >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        count
    }

    /// `GET {path}` with the key in `X-Partner-API-Key`.
    pub async fn get(&self, path: &str, key: Option<&RawKey>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(key) = key {
            request = request.header("X-Partner-API-Key", key.expose());
        }
        request.send().await.unwrap()
    }

    /// `GET {path}` and the JSON body, asserting the status.
    pub async fn get_json(
        &self,
        path: &str,
        key: &RawKey,
        status: StatusCode,
    ) -> serde_json::Value {
        let response = self.get(path, Some(key)).await;
        assert_eq!(response.status(), status, "GET {path}");
        response.json().await.unwrap()
    }
}

/// One audit row, read back for assertions.
#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub key_prefix: Option<String>,
    pub query_params: String,
    pub response_code: i64,
    pub key_id: Option<String>,
    pub endpoint: String,
    pub ip_address: Option<String>,
    pub snapshot_id: Option<String>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Returns `count` indicators spread over categories, TLP levels (RED included), scores and
/// statuses, with `updated_at` descending by minute from `newest` and some ties.
pub fn indicators(count: usize, seed: u64, newest: DateTime<Utc>) -> Vec<Indicator> {
    (0..count)
        .map(|i| {
            let n = i as u64 + seed * 1_000_000;
            let updated_at = newest - chrono::Duration::minutes((i / 2) as i64);
            Indicator {
                id: uuid::Uuid::from_u128(u128::from(n) * 7919 + 13).to_string(),
                indicator_type: IndicatorType::Domain,
                value: format!("host-{n}.example"),
                category: CATEGORIES[i % CATEGORIES.len()].to_owned(),
                risk_score: (i % 5 != 0).then(|| (i * 37 % 101) as f64),
                confidence: Some((i % 100) as i32),
                tlp: Tlp::ALL[i % Tlp::ALL.len()],
                tags: vec![format!("tag{}", i % 3)],
                description: None,
                first_seen: updated_at - chrono::Duration::days(1),
                last_seen: updated_at,
                created_at: updated_at - chrono::Duration::days(1),
                updated_at,
                status: if i % 7 == 3 {
                    Status::Revoked
                } else {
                    Status::Active
                },
            }
        })
        .collect()
}

/// Returns the fixed "now" of generated indicators.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// Returns the `data[].id` values of a JSON page.
pub fn page_ids(body: &serde_json::Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}
