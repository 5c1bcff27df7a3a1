//! Audit completeness: one row per feed request under concurrent load, through a database outage and a graceful stop, never a raw key.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use partner_feed_shared::keys::RawKey;
use reqwest::StatusCode;

use crate::helpers::{base_time, captured_logs, indicators, spawn_app, Backend, TestApp};

/// Requests sent by the load test.
const LOAD_REQUESTS: usize = 3_000;

/// Requests in flight at once.
const CONCURRENCY: usize = 48;

/// How long the SQLite database stays locked at least, while a third of the load is sent.
const OUTAGE: Duration = Duration::from_secs(2);

struct Keys {
    good: RawKey,
    limited: RawKey,
    revoked: RawKey,
    green: RawKey,
    unknown: RawKey,
}

async fn make_keys(app: &TestApp) -> Keys {
    let (good, _) = app.create_key(&[], None).await;
    let (limited, _) = app.create_key(&[], Some(20)).await;
    let (revoked, row) = app.create_key(&[], None).await;
    app.execute(&format!(
        "UPDATE partner_api_keys SET is_active = FALSE WHERE key_id = '{}'",
        row.key_id
    ))
    .await;
    let (green, _) = app
        .create_key(&["tlp:green", "category:phishing"], None)
        .await;
    Keys {
        good,
        limited,
        revoked,
        green,
        unknown: RawKey::generate(),
    }
}

/// Builds request `number` of the mix: every kind of success and rejection.
fn request(app: &TestApp, keys: &Keys, number: usize) -> reqwest::RequestBuilder {
    let url = |path: &str| format!("{}{path}", app.address);
    let client = &app.client;
    let with_key = |builder: reqwest::RequestBuilder, key: &RawKey| {
        builder.header("X-Partner-API-Key", key.expose())
    };
    match number % 11 {
        0 => with_key(client.get(url("/feeds/indicators")), &keys.good),
        1 => with_key(
            client.get(url(
                "/feeds/indicators?category=phishing&fmt=csv&pageSize=7&page=2",
            )),
            &keys.good,
        ),
        2 => with_key(
            client.get(url("/feeds/indicators?fmt=stix&since=2026-03-01")),
            &keys.good,
        ),
        3 => with_key(
            client.get(url("/feeds/indicators?minRiskScore=abc")),
            &keys.good,
        ),
        4 => client.get(url("/feeds/indicators")),
        5 => with_key(
            client.get(url(&format!(
                "/feeds/indicators?key={}",
                keys.unknown.expose()
            ))),
            &keys.unknown,
        ),
        6 => with_key(client.get(url("/feeds/indicators")), &keys.revoked),
        7 => with_key(client.get(url("/feeds/indicators?tlp=amber")), &keys.green),
        8 => with_key(
            client.get(url("/feeds/indicators?pageSize=1")),
            &keys.limited,
        ),
        9 => with_key(
            client.get(url("/feeds/indicators/download?fmt=json")),
            &keys.good,
        )
        .header("Accept-Encoding", "gzip"),
        _ => client
            .get(url(
                "/feeds/indicators?snapshot=20200101T000000000Z-0000abcd",
            ))
            .header("Authorization", format!("Bearer {}", keys.good.expose())),
    }
}

/// A database made unavailable to the edge until `end` is called.
enum Outage {
    /// An exclusive transaction that blocks every other writer.
    Sqlite(sqlx::SqliteConnection),
    /// The database refuses connections and its sessions were ended.
    Postgres { admin: sqlx::PgPool, name: String },
}

impl Outage {
    async fn start(app: &TestApp) -> Outage {
        match app.backend {
            Backend::Sqlite => {
                use sqlx::Connection;
                let mut locker = sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .unwrap();
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut locker)
                    .await
                    .unwrap();
                Outage::Sqlite(locker)
            }
            Backend::Postgres => {
                let name = app.database_url.rsplit('/').next().unwrap().to_owned();
                let server = partner_feed_testkit::postgres().unwrap();
                let admin = sqlx::PgPool::connect(&server.url("postgres"))
                    .await
                    .unwrap();
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
                    .execute(&admin)
                    .await
                    .unwrap();
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&admin)
                .await
                .unwrap();
                Outage::Postgres { admin, name }
            }
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(mut locker) => {
                sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
            }
            Outage::Postgres { admin, name } => {
                sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }
}

/// Reads the audit write failure counter from `/metrics`.
async fn audit_write_failures(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("partner_feed_audit_write_failures_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the audit write failure counter is exported")
}

/// Sends requests `numbers` of the mix, `CONCURRENCY` at a time, and counts the statuses.
async fn send_load(
    app: &TestApp,
    keys: &Keys,
    numbers: std::ops::Range<usize>,
    statuses: &mut BTreeMap<u16, usize>,
) {
    let responses = futures::stream::iter(numbers)
        .map(|number| request(app, keys, number).send())
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for response in responses {
        let response = response.expect("every request gets a response");
        *statuses.entry(response.status().as_u16()).or_default() += 1;
    }
}

/// Sends a third of the load before an outage, a third during it and a third after it.
async fn audit_is_complete(backend: Backend) {
    let Some(mut app) = spawn_app(backend, indicators(200, 30, base_time())).await else {
        return;
    };
    let keys = make_keys(&app).await;
    let third = LOAD_REQUESTS / 3;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();

    send_load(&app, &keys, 0..third, &mut statuses).await;
    let outage = Outage::start(&app).await;
    let outage_started = std::time::Instant::now();
    send_load(&app, &keys, third..2 * third, &mut statuses).await;
    if backend == Backend::Postgres {
        // The writer sends its batches off the request path: wait until one has met the
        // outage, so the test proves the records of a failed write are kept.
        while audit_write_failures(&app).await == 0 {
            assert!(
                outage_started.elapsed() < Duration::from_secs(30),
                "no audit write failed during the outage"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    }
    outage.end().await;
    send_load(&app, &keys, 2 * third..LOAD_REQUESTS, &mut statuses).await;

    for status in [200, 400, 401, 403, 429, 410] {
        assert!(
            statuses.contains_key(&status),
            "no {status} in {statuses:?}"
        );
    }
    app.stop().await;

    assert_eq!(
        app.audit_count().await,
        LOAD_REQUESTS as i64,
        "statuses: {statuses:?}"
    );
    let by_status = app
        .scalar("SELECT COUNT(*) FROM partner_feed_audit WHERE response_code = 429")
        .await;
    assert_eq!(by_status as usize, statuses[&429]);
    assert!(
        std::fs::read_dir(&app.spool_dir).unwrap().next().is_none(),
        "nothing spooled"
    );

    let raw_keys = [
        &keys.good,
        &keys.limited,
        &keys.revoked,
        &keys.green,
        &keys.unknown,
    ];
    for row in app.audit_rows().await {
        for key in raw_keys {
            assert!(
                !row.query_params.contains(key.expose()),
                "raw key in {row:?}"
            );
            assert!(row.key_prefix.as_deref() != Some(key.expose()));
        }
    }
    let logs = captured_logs();
    assert!(
        logs.contains(&keys.good.prefix()),
        "request logs were captured"
    );
    for key in raw_keys {
        assert!(!logs.contains(key.expose()), "a raw key was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_survives_outage_on_sqlite() {
    audit_is_complete(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_survives_outage_on_postgres() {
    audit_is_complete(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_audit_is_spooled_and_replayed() {
    use sqlx::Connection;
    let Some(mut app) = spawn_app(Backend::Sqlite, indicators(20, 31, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    assert_eq!(
        app.get("/feeds/indicators", Some(&key)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.wait_for_audit_rows(1).await, 1);

    let mut locker = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    for _ in 0..25 {
        app.get("/feeds/indicators?pageSize=2", Some(&key)).await;
    }
    app.stop().await;
    let spooled: Vec<_> = std::fs::read_dir(&app.spool_dir).unwrap().collect();
    assert_eq!(spooled.len(), 1, "one spool file written at shutdown");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    app.start().await;
    assert_eq!(app.wait_for_audit_rows(26).await, 26);
    app.stop().await;
    assert_eq!(app.audit_count().await, 26);
    assert!(std::fs::read_dir(&app.spool_dir).unwrap().next().is_none());
}
