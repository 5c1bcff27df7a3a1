//! The product under test: a working folder, the `partner-feed` binary run in it, an edge
//! process, and the partner-side helpers that walk and check the feed.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use partner_feed_shared::db::{Database, IndicatorRow, INDICATOR_COLUMNS};
use partner_feed_shared::{on_pool, Indicator, Status, Tlp};
use serde_json::Value;

/// Rows of the generated, scored indicator set imported beside the real data.
pub const SCORED_ROWS: usize = 2_000;

/// Page size of every walk: the maximum these tests configure, to keep walks short.
const PAGE_SIZE: u64 = 5_000;

/// One indicator as stored in the source table.
pub type SourceRow = Indicator;

/// Where the product keeps its data in one test.
enum Backend {
    SqliteLocal,
    PostgresS3 {
        database_url: String,
        bucket: String,
        s3_env: Vec<(String, String)>,
    },
}

/// A working folder with its own database and object store, and the binary run in it.
pub struct Product {
    /// The working folder; removed when the test ends.
    pub dir: tempfile::TempDir,
    backend: Backend,
    env: Vec<(String, String)>,
}

impl Product {
    /// Uses the defaults: SQLite under `data/` and a `file://data/objects` store.
    pub fn sqlite_local() -> Product {
        let dir = tempfile::tempdir().expect("a working folder");
        Product {
            dir,
            backend: Backend::SqliteLocal,
            env: common_env(),
        }
    }

    /// Uses a fresh database of the throwaway PostgreSQL and a fresh SeaweedFS bucket; `None`
    /// when those servers cannot run here (the test kit printed why).
    pub fn postgres_s3() -> Option<Product> {
        let postgres = partner_feed_testkit::postgres()?;
        let s3 = partner_feed_testkit::s3()?;
        let dir = tempfile::tempdir().expect("a working folder");
        let database_url = postgres.create_database();
        let bucket = s3.create_bucket();
        let mut env = common_env();
        env.push(("I4G_DATABASE__URL".into(), database_url.clone()));
        env.push(("I4G_STORAGE__URL".into(), format!("s3://{bucket}/feed")));
        env.push(("DATABASE_URL".into(), database_url.clone()));
        env.extend(s3.env());
        Some(Product {
            dir,
            backend: Backend::PostgresS3 {
                database_url,
                bucket,
                s3_env: s3.env(),
            },
            env,
        })
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .envs(self.env.iter().cloned());
        command
    }

    /// Runs `partner-feed ARGS`, asserts it succeeded, and returns its stdout and stderr.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self
            .command(env!("CARGO_BIN_EXE_partner-feed"))
            .args(args)
            .output()
            .expect("running partner-feed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "partner-feed {args:?} failed: {text}"
        );
        text
    }

    /// Starts `partner-feed serve` on a free loopback port and waits until it listens.
    pub fn spawn_edge(&self) -> Edge {
        let mut child = self
            .command(env!("CARGO_BIN_EXE_partner-feed"))
            .arg("serve")
            .env("I4G_EDGE__BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting partner-feed serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = address_sender.send(address);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = address_receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the edge did not log its address: {:?}",
                    log.lock().unwrap()
                )
            });
        Edge {
            child,
            base_url: format!("http://{address}"),
            client: reqwest::Client::new(),
            requests: AtomicU64::new(0),
            log,
        }
    }

    /// Creates a key with the README's own shell blocks and returns the raw key.
    pub fn create_key_as_readme_says(&self) -> String {
        let create = match self.backend {
            Backend::SqliteLocal => "sqlite:create",
            Backend::PostgresS3 { .. } => "postgres:create",
        };
        let script = format!(
            "set -euo pipefail\n{}\n{}\nprintf '%s' \"$RAW_KEY\"\n",
            readme_block("generate"),
            readme_block(create)
        );
        let output = self
            .command("bash")
            .arg("-c")
            .arg(script)
            .output()
            .expect("running bash");
        assert!(
            output.status.success(),
            "README key creation failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let key = String::from_utf8(output.stdout).unwrap();
        assert_eq!(key.len(), 43, "the README creates a 43-character key");
        key
    }

    /// Runs one SQL statement with the database's own command line client, as an admin would.
    pub fn admin_sql(&self, sql: &str) {
        let output = match &self.backend {
            Backend::SqliteLocal => self
                .command("sqlite3")
                .arg("data/partner-feed.db")
                .arg(sql)
                .output(),
            Backend::PostgresS3 { database_url, .. } => self
                .command("psql")
                .args([database_url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output(),
        }
        .expect("running the SQL client");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn database(&self) -> Database {
        let url = match &self.backend {
            Backend::SqliteLocal => format!(
                "sqlite://{}",
                self.dir.path().join("data/partner-feed.db").display()
            ),
            Backend::PostgresS3 { database_url, .. } => database_url.clone(),
        };
        Database::connect(&url)
            .await
            .expect("connecting to the test database")
    }

    /// Counts the rows of `table`.
    pub async fn count_rows(&self, table: &str) -> u64 {
        let db = self.database().await;
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 = on_pool!(&db, pool => sqlx::query_scalar(&sql).fetch_one(pool).await)
            .expect("counting rows");
        db.close().await;
        count as u64
    }

    /// Reads every indicator of the source table.
    pub async fn read_indicators(&self) -> Vec<SourceRow> {
        let db = self.database().await;
        let sql = format!("SELECT {INDICATOR_COLUMNS} FROM indicators");
        let rows: Vec<IndicatorRow> =
            on_pool!(&db, pool => sqlx::query_as(&sql).fetch_all(pool).await)
                .expect("reading indicators");
        db.close().await;
        rows.into_iter()
            .map(|row| Indicator::try_from(row).expect("a valid stored row"))
            .collect()
    }

    /// Reads the manifest `latest.json` names, from the product's own object store.
    pub async fn latest_manifest(&self) -> Manifest {
        let store = self.object_store();
        let read = |path: String| {
            let store = Arc::clone(&store);
            async move {
                let bytes = store
                    .get(&path.as_str().into())
                    .await
                    .expect("reading an object")
                    .bytes()
                    .await
                    .unwrap();
                serde_json::from_slice::<Value>(&bytes).expect("a JSON object")
            }
        };
        let latest = read("latest.json".to_owned()).await;
        let manifest = read(latest["manifest"].as_str().unwrap().to_owned()).await;
        Manifest {
            snapshot_id: manifest["snapshotId"].as_str().unwrap().to_owned(),
            default_total: manifest["defaultPages"]["totalItems"].as_u64().unwrap(),
        }
    }

    fn object_store(&self) -> Arc<dyn object_store::ObjectStore> {
        match &self.backend {
            Backend::SqliteLocal => {
                let folder = self.dir.path().join("data/objects");
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap())
            }
            Backend::PostgresS3 { bucket, s3_env, .. } => {
                let value = |name: &str| {
                    s3_env
                        .iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.clone())
                        .unwrap()
                };
                let store = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(value("AWS_ENDPOINT_URL"))
                    .with_allow_http(true)
                    .with_region(value("AWS_REGION"))
                    .with_access_key_id(value("AWS_ACCESS_KEY_ID"))
                    .with_secret_access_key(value("AWS_SECRET_ACCESS_KEY"))
                    .with_bucket_name(bucket)
                    .build()
                    .unwrap();
                Arc::new(object_store::prefix::PrefixStore::new(store, "feed"))
            }
        }
    }

    /// Changes the description of some URLhaus indicators and revokes others through the
    /// importer; returns the ids of both groups.
    pub fn update_and_revoke_some(
        &self,
        source: &[SourceRow],
    ) -> (HashSet<String>, HashSet<String>) {
        let mut candidates: Vec<&SourceRow> = source
            .iter()
            .filter(|row| row.category == "malware_download" && row.status == Status::Active)
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(CSV_HEADER).unwrap();
        let mut updated = HashSet::new();
        let mut revoked = HashSet::new();
        for (n, row) in candidates.iter().take(60).enumerate() {
            let mut changed = (*row).clone();
            if n % 3 == 0 {
                changed.status = Status::Revoked;
                revoked.insert(row.id.clone());
            } else {
                changed.description = Some(format!("updated by the end-to-end test, round {n}"));
                updated.insert(row.id.clone());
            }
            writer.write_record(csv_record(&changed)).unwrap();
        }
        let path = self.dir.path().join("changes.csv");
        std::fs::write(&path, writer.into_inner().unwrap()).unwrap();
        let report = self.run_ok(&["import", path.to_str().unwrap()]);
        assert!(report.contains("updated 60,"), "{report}");
        (updated, revoked)
    }

    /// Asserts the raw key appears in no log line, audit row or key row.
    pub async fn assert_raw_key_absent(&self, raw_key: &str, log: &Mutex<Vec<String>>) {
        for line in log.lock().unwrap().iter() {
            assert!(!line.contains(raw_key), "raw key in a log line: {line}");
        }
        let db = self.database().await;
        let audit = "SELECT COALESCE(key_id, '') || COALESCE(partner_name, '') || COALESCE(key_prefix, '') || endpoint \
             || method || CAST(query_params AS TEXT) || COALESCE(ip_address, '') || COALESCE(user_agent, '') \
             || COALESCE(snapshot_id, '') FROM partner_feed_audit";
        let keys = "SELECT key_id || partner_name || key_hash || key_prefix || CAST(scopes AS TEXT) FROM partner_api_keys";
        for sql in [audit, keys] {
            let texts: Vec<String> =
                on_pool!(&db, pool => sqlx::query_scalar(sql).fetch_all(pool).await)
                    .expect("reading rows");
            assert!(!texts.is_empty(), "{sql} returned no rows");
            for text in texts {
                assert!(!text.contains(raw_key), "raw key stored in a row: {text}");
            }
        }
        db.close().await;
    }
}

fn common_env() -> Vec<(String, String)> {
    [
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("I4G_PARTNER_FEED__KEY_CACHE_TTL_SECONDS", "1"),
        ("I4G_EDGE__SNAPSHOT_POLL_SECONDS", "1"),
        ("I4G_PARTNER_FEED__MAX_PAGE_SIZE", "5000"),
        // The unfiltered walks then get the publisher's precomputed pages, and a publish
        // writes a few hundred objects rather than tens of thousands.
        ("I4G_PARTNER_FEED__DEFAULT_PAGE_SIZE", "5000"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

fn listening_address(line: &str) -> Option<String> {
    let record: Value = serde_json::from_str(line).ok()?;
    let fields = &record["fields"];
    if fields["message"] != "edge listening" {
        return None;
    }
    fields["address"].as_str().map(str::to_owned)
}

/// Returns the body of the shell block that follows `<!-- admin-sql:NAME -->` in the README.
pub fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let marker = format!("<!-- admin-sql:{name} -->\n```sh\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no block {name}"))
        + marker.len();
    let length = readme[start..].find("```").expect("the block is closed");
    readme[start..start + length].to_owned()
}

/// What the test reads from a snapshot's manifest.
#[derive(Debug)]
pub struct Manifest {
    /// The snapshot id.
    pub snapshot_id: String,
    /// Items of the default listing.
    pub default_total: u64,
}

/// The filters of one partner query; `None` leaves a parameter out.
#[derive(Debug, Clone, Default)]
pub struct SyncQuery {
    pub category: Option<String>,
    pub min_risk_score: Option<f64>,
    pub since: Option<String>,
    pub tlp: Option<String>,
}

impl SyncQuery {
    fn parameters(&self, format: &str) -> Vec<(String, String)> {
        let mut parameters = vec![
            ("pageSize".to_owned(), PAGE_SIZE.to_string()),
            ("fmt".to_owned(), format.to_owned()),
        ];
        if let Some(category) = &self.category {
            parameters.push(("category".into(), category.clone()));
        }
        if let Some(score) = self.min_risk_score {
            parameters.push(("minRiskScore".into(), score.to_string()));
        }
        if let Some(since) = &self.since {
            parameters.push(("since".into(), since.clone()));
        }
        if let Some(tlp) = &self.tlp {
            parameters.push(("tlp".into(), tlp.clone()));
        }
        parameters
    }
}

/// Computes, from the source table, the ids a query must return, in publish order.
pub fn expected_ids(source: &[SourceRow], query: &SyncQuery) -> Vec<String> {
    let highest: Tlp = query.tlp.as_deref().unwrap_or("TLP:AMBER").parse().unwrap();
    let since = query.since.as_deref().map(parse_since);
    let mut rows: Vec<&SourceRow> = source
        .iter()
        .filter(|row| row.tlp != Tlp::Red && row.tlp <= highest)
        .filter(|row| {
            query
                .category
                .as_ref()
                .is_none_or(|category| row.category.eq_ignore_ascii_case(category))
        })
        .filter(|row| {
            query
                .min_risk_score
                .is_none_or(|min| row.risk_score.is_some_and(|score| score >= min))
        })
        .filter(|row| match since {
            Some(since) => row.updated_at > since,
            None => row.status == Status::Active,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    rows.into_iter().map(|row| row.id.clone()).collect()
}

fn parse_since(text: &str) -> DateTime<Utc> {
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        Err(_) => DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc),
    }
}

/// A running `partner-feed serve` and a partner's HTTP client for it.
pub struct Edge {
    child: Child,
    base_url: String,
    client: reqwest::Client,
    requests: AtomicU64,
    /// Every line the edge logged.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The result of following `next` links to the end.
#[derive(Debug, Default)]
pub struct Walk {
    /// Indicator ids in the order received.
    pub ids: Vec<String>,
    /// JSON records (JSON walks only).
    pub records: Vec<Value>,
    /// Every page body.
    pub bodies: Vec<Vec<u8>>,
    /// `pagination.totalItems` (JSON) or `X-Total-Count` (CSV, STIX) of the first page.
    pub total_header_or_body: u64,
}

impl Edge {
    /// Returns the number of HTTP requests sent to the feed routes so far.
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    async fn get(&self, key: &str, path_and_query: &str) -> reqwest::Response {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let response = self
            .client
            .get(format!("{}{path_and_query}", self.base_url))
            .header("X-Partner-API-Key", key)
            .send()
            .await
            .expect("an HTTP response");
        assert_eq!(response.status(), 200, "GET {path_and_query}");
        response
    }

    /// Follows the `next` links of `query` in `format` from page 1 to the end.
    pub async fn walk(&self, key: &str, query: &SyncQuery, format: &str) -> Walk {
        let parameters = query.parameters(format);
        let first = format!(
            "/feeds/indicators?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&parameters)
                .finish()
        );
        let mut walk = Walk::default();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(link) = next.take() {
            pages += 1;
            assert!(pages < 2_000, "too many pages for {query:?}");
            let response = self.get(key, &link).await;
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap().to_vec();
            if pages == 1 && format != "json" {
                walk.total_header_or_body =
                    headers["x-total-count"].to_str().unwrap().parse().unwrap();
            }
            match format {
                "json" => next = read_json_page(&body, &mut walk, pages == 1),
                "csv" => {
                    read_csv_ids(&body, &mut walk.ids);
                    next = next_link(&headers);
                }
                _ => {
                    read_stix_ids(&body, &mut walk.ids);
                    next = next_link(&headers);
                }
            }
            walk.bodies.push(body);
        }
        walk
    }

    /// Polls the default listing until it is served from a snapshot other than `old`.
    pub async fn wait_for_snapshot_change(&self, key: &str, old: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body: Value = self
                .get(key, "/feeds/indicators?pageSize=1")
                .await
                .json()
                .await
                .unwrap();
            if body["snapshot"]["id"] != old {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the edge still serves snapshot {old}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Sends SIGTERM and asserts the edge exits 0 within 30 seconds.
    pub fn stop_gracefully(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the edge exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the edge did not stop within 30 seconds of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_json_page(body: &[u8], walk: &mut Walk, first: bool) -> Option<String> {
    let page: Value = serde_json::from_slice(body).expect("a JSON page");
    if first {
        walk.total_header_or_body = page["pagination"]["totalItems"].as_u64().unwrap();
    }
    for record in page["data"].as_array().unwrap() {
        walk.ids.push(record["id"].as_str().unwrap().to_owned());
        walk.records.push(record.clone());
    }
    page["links"]["next"].as_str().map(str::to_owned)
}

fn read_csv_ids(body: &[u8], ids: &mut Vec<String>) {
    let mut reader = csv::Reader::from_reader(body);
    for record in reader.records() {
        ids.push(record.expect("a CSV record")[0].to_owned());
    }
}

fn read_stix_ids(body: &[u8], ids: &mut Vec<String>) {
    let bundle: Value = serde_json::from_slice(body).expect("a STIX bundle");
    for object in bundle["objects"].as_array().unwrap() {
        if object["type"] == "indicator" {
            let id = object["id"].as_str().unwrap();
            ids.push(id.strip_prefix("indicator--").unwrap().to_owned());
        }
    }
}

fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| part.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(target, _)| target.to_owned())
}

/// Columns of the feed's CSV, which the importer reads too.
pub const CSV_HEADER: [&str; 13] = [
    "id",
    "type",
    "value",
    "category",
    "risk_score",
    "confidence",
    "tlp",
    "tags",
    "description",
    "first_seen",
    "last_seen",
    "updated_at",
    "status",
];

fn timestamp(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn csv_record(row: &Indicator) -> Vec<String> {
    vec![
        row.id.clone(),
        row.indicator_type.as_str().to_owned(),
        row.value.clone(),
        row.category.clone(),
        row.risk_score
            .map(|score| score.to_string())
            .unwrap_or_default(),
        row.confidence
            .map(|confidence| confidence.to_string())
            .unwrap_or_default(),
        row.tlp.as_str().to_owned(),
        row.tags.join(";"),
        row.description.clone().unwrap_or_default(),
        timestamp(row.first_seen),
        timestamp(row.last_seen),
        timestamp(row.updated_at),
        row.status.as_str().to_owned(),
    ]
}

/// Generates, with a fixed seed, indicators with risk scores, every TLP and hostile values,
/// in the feed's own CSV shape.
pub fn generate_scored_csv() -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let tlps = [
        "TLP:CLEAR",
        "TLP:GREEN",
        "TLP:AMBER",
        "TLP:AMBER+STRICT",
        "TLP:RED",
    ];
    let categories = ["phishing", "investment_scam", "Phishing_Kit"];
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER).unwrap();
    for n in 0..SCORED_ROWS {
        let (kind, value) = match n % 6 {
            0 => (
                "url",
                format!("https://bank-{n}.example/it's/a \"trap\"/path\\x?a=1,b=2')"),
            ),
            1 => ("domain", format!("xn--bnk-{n}-9ra.example")),
            2 => ("email", format!("support+{n}@bänk-{n}.example")),
            3 => ("phone", format!("+44 20 7946 {:04}", n)),
            4 => ("ipv4", format!("203.0.{}.{}", n / 250, n % 250)),
            _ => (
                "sha256",
                format!("{:064x}", n as u128 * 0x9e37_79b9_7f4a_7c15),
            ),
        };
        let score = if n % 10 == 0 {
            String::new()
        } else {
            format!("{}", next(201) as f64 / 2.0)
        };
        let day = 1 + next(28);
        let record = vec![
            String::new(),
            kind.to_owned(),
            value,
            categories[n % categories.len()].to_owned(),
            score,
            if n % 7 == 0 {
                String::new()
            } else {
                next(101).to_string()
            },
            tlps[next(tlps.len() as u64) as usize].to_owned(),
            format!("lure,{};wave {}", n % 5, n % 3),
            if n % 4 == 0 {
                format!("Line one, \"quoted\"\r\nline two of {n}")
            } else {
                String::new()
            },
            format!("2025-12-{day:02}T08:00:00Z"),
            format!("2026-01-{day:02}T09:30:00.250Z"),
            format!("2026-02-{day:02}T10:{:02}:00Z", n % 60),
            "active".to_owned(),
        ];
        writer.write_record(record).unwrap();
    }
    writer.into_inner().unwrap()
}

/// Parses CSV pages with Python's `csv` module; returns every row as column name to value.
pub fn python_csv_rows(bodies: &[Vec<u8>]) -> Vec<BTreeMap<String, String>> {
    let Some(tools) = partner_feed_testkit::python_tools() else {
        let mut rows = Vec::new();
        for body in bodies {
            let mut reader = csv::Reader::from_reader(body.as_slice());
            let headers = reader.headers().unwrap().clone();
            for record in reader.records() {
                let record = record.unwrap();
                rows.push(
                    headers
                        .iter()
                        .zip(record.iter())
                        .map(|(h, v)| (h.to_owned(), v.to_owned()))
                        .collect(),
                );
            }
        }
        return rows;
    };
    let folder = tempfile::tempdir().unwrap();
    let files = write_pages(folder.path(), bodies, "csv");
    let script = "import csv, json, sys\nrows = []\nfor path in sys.argv[1:]:\n    with open(path, newline='', encoding='utf-8') as f:\n        rows.extend(csv.DictReader(f))\njson.dump(rows, sys.stdout)\n";
    let output = Command::new(&tools.python)
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("running python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON rows from Python")
}

fn write_pages(folder: &Path, bodies: &[Vec<u8>], extension: &str) -> Vec<PathBuf> {
    bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            let path = folder.join(format!("page-{n:05}.{extension}"));
            std::fs::write(&path, body).unwrap();
            path
        })
        .collect()
}

/// Asserts one CSV row (as Python read it) holds the same values as the JSON record.
pub fn assert_csv_matches_json(row: &BTreeMap<String, String>, record: &Value) {
    let text = |name: &str| match &record[name] {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let id = text("id");
    for (column, field) in [
        ("id", "id"),
        ("type", "type"),
        ("value", "value"),
        ("category", "category"),
        ("confidence", "confidence"),
        ("tlp", "tlp"),
        ("description", "description"),
        ("first_seen", "firstSeen"),
        ("last_seen", "lastSeen"),
        ("updated_at", "updatedAt"),
        ("status", "status"),
    ] {
        assert_eq!(row[column], text(field), "{column} of {id}");
    }
    let csv_score: Option<f64> = Some(row["risk_score"].as_str())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap());
    assert_eq!(
        csv_score,
        record["riskScore"].as_f64(),
        "risk_score of {id}"
    );
    let tags: Vec<String> = record["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap().replace(';', ","))
        .collect();
    assert_eq!(row["tags"], tags.join(";"), "tags of {id}");
}

/// Picks `count` pages spread evenly over `bodies`, the same ones every run.
pub fn fixed_sample(bodies: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let step = (bodies.len() / count.max(1)).max(1);
    bodies.iter().step_by(step).take(count).cloned().collect()
}

/// Output of one `stix2_validator --strict` run over several bundles.
pub struct ValidatorReport {
    /// Whether the validator ran and found nothing; true when it is not installed here.
    clean: bool,
    /// What the validator printed.
    pub output: String,
}

impl ValidatorReport {
    /// Returns true when every bundle is valid with no warning.
    pub fn is_clean(&self) -> bool {
        self.clean
    }
}

/// Runs `stix2_validator --strict` once over all `bodies`.
pub fn stix_validator_report(bodies: &[Vec<u8>]) -> ValidatorReport {
    assert!(!bodies.is_empty(), "no STIX pages to validate");
    let Some(tools) = partner_feed_testkit::python_tools() else {
        return ValidatorReport {
            clean: true,
            output: "stix2_validator is not installed here".to_owned(),
        };
    };
    let folder = tempfile::tempdir().unwrap();
    let files = write_pages(folder.path(), bodies, "json");
    let output = Command::new(&tools.stix2_validator)
        .arg("--strict")
        .args(&files)
        .output()
        .expect("running stix2_validator");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let valid = stdout.matches("STIX JSON: Valid").count();
    let clean = output.status.success()
        && !stdout.contains("Warning")
        && !stdout.contains("Error")
        && valid == files.len();
    ValidatorReport {
        clean,
        output: format!("{valid} of {} valid\n{stdout}\n{stderr}", files.len()),
    }
}
