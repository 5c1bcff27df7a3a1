//! Every row of the feed's status table, on SQLite and PostgreSQL, with headers and error bodies.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{base_time, indicators, spawn_app, spawn_with, Backend, Setup, TestApp};

async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "errors are JSON in every format"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

fn assert_rate_limit_headers(response: &reqwest::Response) {
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
        "ratelimit",
    ] {
        assert!(
            response.headers().contains_key(name),
            "{name} missing on {}",
            response.status()
        );
    }
}

async fn status_table(backend: Backend) {
    let Some(app) = spawn_app(backend, indicators(60, 1, base_time())).await else {
        return;
    };
    let mut requests = 0;

    let response = app.get("/feeds/indicators", None).await;
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_error(response, StatusCode::UNAUTHORIZED, "missing_api_key").await;
    requests += 1;

    let unknown = partner_feed_shared::keys::RawKey::generate();
    let response = app.get("/feeds/indicators", Some(&unknown)).await;
    assert!(response.headers().contains_key("www-authenticate"));
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    requests += 1;

    let (revoked, revoked_row) = app.create_key(&[], None).await;
    app.execute(&format!(
        "UPDATE partner_api_keys SET is_active = FALSE WHERE key_id = '{}'",
        revoked_row.key_id
    ))
    .await;
    let response = app.get("/feeds/indicators", Some(&revoked)).await;
    assert_error(response, StatusCode::FORBIDDEN, "api_key_revoked").await;
    requests += 1;

    let (expired, expired_row) = app.create_key(&[], None).await;
    app.execute(&format!(
        "UPDATE partner_api_keys SET expires_at = '2020-01-01T00:00:00Z' WHERE key_id = '{}'",
        expired_row.key_id
    ))
    .await;
    let response = app.get("/feeds/indicators", Some(&expired)).await;
    assert_error(response, StatusCode::FORBIDDEN, "api_key_expired").await;
    requests += 1;

    let (key, _) = app
        .create_key(&["tlp:green", "category:phishing"], Some(3))
        .await;
    let response = app
        .get("/feeds/indicators?minRiskScore=150", Some(&key))
        .await;
    assert_rate_limit_headers(&response);
    let message = assert_error(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert!(message.contains("minRiskScore"), "{message}");
    requests += 1;

    let response = app.get("/feeds/indicators?tlp=amber", Some(&key)).await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden_scope").await;
    requests += 1;

    let response = app
        .get(
            "/feeds/indicators?category=crypto_drainer&fmt=csv",
            Some(&key),
        )
        .await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden_scope").await;
    requests += 1;

    let response = app.get("/feeds/indicators", Some(&key)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limit_headers(&response);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    assert_ne!(response.headers()["ratelimit-reset"], "0");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    requests += 1;

    let response = app
        .get(
            "/feeds/indicators?snapshot=20200101T000000000Z-00000000",
            Some(&revoked),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "the key is checked before the snapshot"
    );
    requests += 1;

    let (good, _) = app.create_key(&[], None).await;
    let response = app
        .get(
            "/feeds/indicators?snapshot=20200101T000000000Z-00000000",
            Some(&good),
        )
        .await;
    assert_error(response, StatusCode::GONE, "snapshot_gone").await;
    requests += 1;

    let response = app.get("/feeds/indicators", Some(&good)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_rate_limit_headers(&response);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    requests += 1;

    let response = app
        .client
        .get(format!("{}/feeds/indicators", app.address))
        .header("X-Partner-API-Key", good.expose())
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    requests += 1;

    let response = app
        .client
        .get(format!("{}/feeds/indicators?fmt=csv", app.address))
        .header("Authorization", format!("Bearer {}", good.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    requests += 1;

    assert_eq!(app.wait_for_audit_rows(requests).await, requests);
    let rows = app.audit_rows().await;
    let mut codes: Vec<i64> = rows.iter().map(|row| row.response_code).collect();
    codes.sort();
    assert_eq!(
        codes,
        [200, 200, 304, 400, 401, 401, 403, 403, 403, 403, 403, 410, 429]
    );
    assert!(rows.iter().all(|row| row.endpoint == "/feeds/indicators"));
    let served = rows.iter().filter(|row| row.response_code == 200);
    assert!(served.clone().count() == 2 && served.into_iter().all(|row| row.snapshot_id.is_some()));
    let no_key = rows.iter().filter(|row| row.key_id.is_none()).count();
    assert_eq!(
        no_key, 2,
        "only the missing and unknown keys have no key_id"
    );
}

#[tokio::test]
async fn status_table_holds_on_sqlite() {
    status_table(Backend::Sqlite).await;
}

#[tokio::test]
async fn status_table_holds_on_postgres() {
    status_table(Backend::Postgres).await;
}

async fn disabled_feed_and_missing_snapshot(backend: Backend) {
    let disabled = Setup::new(backend, indicators(5, 2, base_time()))
        .configure(|settings| settings.partner_feed.enabled = false);
    let Some(app) = spawn_with(disabled).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let response = app.get("/feeds/indicators?fmt=stix", Some(&key)).await;
    assert_rate_limit_headers(&response);
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "feed_disabled").await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);

    let Some(empty) = spawn_with(Setup::new(backend, Vec::new()).unpublished()).await else {
        return;
    };
    let (key, _) = empty.create_key(&[], None).await;
    let response = empty.get("/feeds/indicators", Some(&key)).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "no_snapshot").await;
    let ready = empty.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(empty.wait_for_audit_rows(1).await, 1);
}

#[tokio::test]
async fn unavailable_feed_returns_503_on_sqlite() {
    disabled_feed_and_missing_snapshot(Backend::Sqlite).await;
}

#[tokio::test]
async fn unavailable_feed_returns_503_on_postgres() {
    disabled_feed_and_missing_snapshot(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(5, 3, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let cases = [
        ("limit=5", "limit"),
        ("page=1&page=2", "page"),
        ("tlp=TLP:RED", "tlp"),
        ("tlp=blue", "tlp"),
        ("since=yesterday", "since"),
        ("pageSize=501", "pageSize"),
        ("pageSize=100000", "pageSize"),
        ("minRiskScore=101", "minRiskScore"),
        ("minRiskScore=-1", "minRiskScore"),
        ("page=0", "page"),
        ("fmt=xml", "fmt"),
        ("snapshot=..%2Fetc", "snapshot"),
    ];

    for (query, parameter) in cases {
        let response = app
            .get(&format!("/feeds/indicators?{query}"), Some(&key))
            .await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        assert!(message.contains(parameter), "{query}: {message}");
    }
    let response = app
        .get("/feeds/indicators/download?page=2", Some(&key))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    let response = app
        .client
        .post(format!("{}/feeds/indicators", app.address))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let response = app.get("/feeds/other", Some(&key)).await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.wait_for_audit_rows(cases.len() as i64 + 2).await,
        cases.len() as i64 + 2,
        "404 is not a feed route"
    );
}

#[tokio::test]
async fn revoked_key_rejected_within_cache_ttl() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(5, 4, base_time())).await else {
        return;
    };
    let (key, row) = app.create_key(&[], None).await;
    assert_eq!(
        app.get("/feeds/indicators", Some(&key)).await.status(),
        StatusCode::OK
    );

    app.execute(&format!(
        "UPDATE partner_api_keys SET is_active = FALSE WHERE key_id = '{}'",
        row.key_id
    ))
    .await;
    let ttl = Duration::from_secs(app.settings.partner_feed.key_cache_ttl_seconds);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    assert_eq!(
        app.get("/feeds/indicators", Some(&key)).await.status(),
        StatusCode::FORBIDDEN
    );
}

async fn check_rate_limit_excess(app: &TestApp) {
    let (key, _) = app.create_key(&[], Some(5)).await;
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..8 {
        let response = app.get("/feeds/indicators?pageSize=1", Some(&key)).await;
        statuses.push(response.status().as_u16());
        remaining.push(
            response.headers()["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        assert_eq!(response.headers()["ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"per-key\";q=5;w=60"
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(remaining, ["4", "3", "2", "1", "0", "0", "0", "0"]);
}

#[tokio::test]
async fn rate_limit_rejects_only_excess_requests() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(5, 5, base_time())).await else {
        return;
    };
    check_rate_limit_excess(&app).await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("partner_feed_rate_limited_requests_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn forwarded_for_is_used_only_from_trusted_proxies() {
    let Some(mut app) = spawn_app(Backend::Sqlite, indicators(5, 6, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let forwarded = |app: &TestApp| {
        app.client
            .get(format!("{}/feeds/indicators", app.address))
            .header("X-Partner-API-Key", key.expose())
            .header("X-Forwarded-For", "203.0.113.9, 198.51.100.4")
            .send()
    };
    forwarded(&app).await.unwrap();
    app.stop().await;
    app.settings.edge.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    app.start().await;
    forwarded(&app).await.unwrap();
    app.stop().await;

    let ips: Vec<Option<String>> = app
        .audit_rows()
        .await
        .into_iter()
        .map(|row| row.ip_address)
        .collect();
    assert_eq!(
        ips,
        [
            Some("127.0.0.1".to_owned()),
            Some("198.51.100.4".to_owned())
        ]
    );
}

#[tokio::test]
async fn last_used_at_is_written_in_batches() {
    let Some(mut app) = spawn_app(Backend::Sqlite, indicators(5, 7, base_time())).await else {
        return;
    };
    // Restart with no periodic write within the test, so that only a write per request
    // could set last_used_at before the stop.
    app.stop().await;
    app.key_use_flush_interval = Duration::from_secs(3_600);
    app.start().await;
    let (key, row) = app.create_key(&[], None).await;
    let used_keys = format!(
        "SELECT COUNT(*) FROM partner_api_keys WHERE key_id = '{}' AND last_used_at IS NOT NULL",
        row.key_id
    );
    for _ in 0..3 {
        assert_eq!(
            app.get("/feeds/indicators", Some(&key)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.scalar(&used_keys).await, 0, "not written per request");

    app.stop().await;

    assert_eq!(
        app.scalar(&used_keys).await,
        1,
        "written at the latest on shutdown"
    );
}
