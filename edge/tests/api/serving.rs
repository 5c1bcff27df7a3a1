//! Serving pages: stored and filtered pages, pagination across a snapshot swap, 410, downloads and gzip.

use std::collections::HashSet;
use std::io::Read;

use reqwest::StatusCode;

use partner_feed_shared::{Indicator, Status, Tlp};

use crate::helpers::{base_time, indicators, page_ids, spawn_app, Backend, TestApp};

/// Ids a query should return, in publish order, computed from the inserted rows.
fn expected_ids(rows: &[Indicator], keep: impl Fn(&Indicator) -> bool) -> Vec<String> {
    let mut matching: Vec<&Indicator> = rows.iter().filter(|row| keep(row)).collect();
    matching.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    matching.into_iter().map(|row| row.id.clone()).collect()
}

/// Follows `links.next` from `first` and returns every id and the snapshot of every page.
async fn walk(
    app: &TestApp,
    key: &partner_feed_shared::keys::RawKey,
    first: &str,
    mut between_pages: impl FnMut(usize) -> Option<futures::future::BoxFuture<'static, ()>>,
) -> (Vec<String>, HashSet<String>) {
    let mut ids = Vec::new();
    let mut snapshots = HashSet::new();
    let mut next = Some(first.to_owned());
    let mut page = 0;
    while let Some(link) = next {
        let body = app.get_json(&link, key, StatusCode::OK).await;
        ids.extend(page_ids(&body));
        snapshots.insert(body["snapshot"]["id"].as_str().unwrap().to_owned());
        next = body["links"]["next"].as_str().map(str::to_owned);
        page += 1;
        if let Some(pause) = between_pages(page) {
            pause.await;
        }
    }
    (ids, snapshots)
}

#[tokio::test]
async fn walking_pages_returns_each_match_once_in_order() {
    let rows = indicators(95, 10, base_time());
    let Some(app) = spawn_app(Backend::Sqlite, rows.clone()).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;

    let (ids, snapshots) = walk(&app, &key, "/feeds/indicators", |_| None).await;
    let expected = expected_ids(&rows, |row| {
        row.status == Status::Active && row.tlp <= Tlp::Amber
    });
    assert_eq!(ids, expected, "default listing from stored pages");
    assert_eq!(snapshots.len(), 1);

    let (ids, _) = walk(
        &app,
        &key,
        "/feeds/indicators?category=PHISHING&minRiskScore=20&pageSize=3&tlp=green",
        |_| None,
    )
    .await;
    let expected = expected_ids(&rows, |row| {
        row.status == Status::Active
            && row.tlp <= Tlp::Green
            && row.category == "phishing"
            && row.risk_score.is_some_and(|score| score >= 20.0)
    });
    assert!(!expected.is_empty());
    assert_eq!(ids, expected, "filtered listing");

    let since = base_time() - chrono::Duration::minutes(20);
    let (ids, _) = walk(
        &app,
        &key,
        "/feeds/indicators?since=2026-03-01T13:40:00%2B02:00&pageSize=4",
        |_| None,
    )
    .await;
    let expected = expected_ids(&rows, |row| row.updated_at > since && row.tlp <= Tlp::Amber);
    assert!(expected.len() > 4);
    assert_eq!(ids, expected, "since admits revoked rows and cuts strictly");
}

#[tokio::test]
async fn pinned_pagination_survives_a_new_snapshot() {
    let first_rows = indicators(40, 11, base_time());
    let Some(app) = spawn_app(Backend::Sqlite, first_rows.clone()).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let first_page = app
        .get_json("/feeds/indicators?pageSize=4", &key, StatusCode::OK)
        .await;
    let first_snapshot = first_page["snapshot"]["id"].as_str().unwrap().to_owned();

    let newer = indicators(15, 12, base_time() + chrono::Duration::hours(1));
    app.insert_indicators(&newer).await;
    let second_snapshot = app.publish().await;
    app.wait_for_snapshot(&second_snapshot).await;

    let unpinned = app
        .get_json("/feeds/indicators?pageSize=4", &key, StatusCode::OK)
        .await;
    assert_eq!(unpinned["snapshot"]["id"], second_snapshot.as_str());

    let next = first_page["links"]["next"].as_str().unwrap();
    assert!(next.contains(&first_snapshot));
    let (mut ids, snapshots) = walk(&app, &key, next, |_| None).await;
    let mut all = page_ids(&first_page);
    all.append(&mut ids);
    let expected = expected_ids(&first_rows, |row| {
        row.status == Status::Active && row.tlp <= Tlp::Amber
    });
    assert_eq!(all, expected);
    assert_eq!(snapshots, HashSet::from([first_snapshot.clone()]));

    app.delete_snapshot(&first_snapshot).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = app.get(next, Some(&key)).await;
    assert_eq!(response.status(), StatusCode::GONE);
}

#[tokio::test]
async fn walk_survives_mid_walk_publish() {
    let rows = indicators(50, 13, base_time());
    let Some(app) = spawn_app(Backend::Sqlite, rows.clone()).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let (key, _) = app
        .create_key(&["category:phishing", "category:crypto_drainer"], None)
        .await;

    let publisher_app = std::sync::Arc::clone(&app);
    let (ids, snapshots) = walk(&app, &key, "/feeds/indicators?pageSize=2", move |page| {
        (page == 2).then(|| {
            let app = std::sync::Arc::clone(&publisher_app);
            let pause: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
                let newer = indicators(10, 14, base_time() + chrono::Duration::hours(2));
                app.insert_indicators(&newer).await;
                let snapshot = app.publish().await;
                app.wait_for_snapshot(&snapshot).await;
            });
            pause
        })
    })
    .await;

    let expected = expected_ids(&rows, |row| {
        row.status == Status::Active
            && row.tlp <= Tlp::Amber
            && (row.category == "phishing" || row.category == "crypto_drainer")
    });
    assert_eq!(ids, expected);
    assert_eq!(snapshots.len(), 1);
}

#[tokio::test]
async fn csv_and_stix_carry_pagination_in_headers() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(30, 15, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    for format in ["csv", "stix"] {
        let response = app
            .get(
                &format!("/feeds/indicators?fmt={format}&pageSize=5"),
                Some(&key),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        let snapshot = headers["x-snapshot-id"].to_str().unwrap();
        let link = headers["link"].to_str().unwrap();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        assert!(link.contains("page=2"), "{link}");
        assert!(link.contains(snapshot), "{link}");
        let total: u64 = headers["x-total-count"].to_str().unwrap().parse().unwrap();
        assert!(total > 5);
    }
    let response = app
        .get("/feeds/indicators?fmt=stix&page=999", Some(&key))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a page past the end is empty, not an error"
    );
    assert!(!response.headers().contains_key("link"));
}

#[tokio::test]
async fn stored_page_bytes_and_gzip() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(30, 16, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let plain = app.get("/feeds/indicators?page=2", Some(&key)).await;
    let snapshot = plain.headers()["x-snapshot-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain_body = plain.bytes().await.unwrap();
    let stored = app
        .store
        .get(&object_store::path::Path::from(format!(
            "snapshots/{snapshot}/pages/json/2.json"
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(plain_body, stored);

    let compressed = app
        .client
        .get(format!("{}/feeds/indicators?page=2", app.address))
        .header("X-Partner-API-Key", key.expose())
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    assert_ne!(compressed.headers()["etag"].to_str().unwrap(), etag);
    let bytes = compressed.bytes().await.unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, plain_body);
}

#[tokio::test]
async fn download_streams_gzip_or_plain() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(30, 17, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    let gzip = app
        .client
        .get(format!("{}/feeds/indicators/download?fmt=csv", app.address))
        .header("X-Partner-API-Key", key.expose())
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.status(), StatusCode::OK);
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let etag = gzip.headers()["etag"].to_str().unwrap().to_owned();
    let compressed = gzip.bytes().await.unwrap();
    let mut expected = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut expected)
        .unwrap();

    let plain = app
        .get("/feeds/indicators/download?fmt=csv", Some(&key))
        .await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(!plain.headers().contains_key("content-encoding"));
    assert_eq!(plain.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(plain.bytes().await.unwrap(), expected);

    let not_modified = app
        .client
        .get(format!("{}/feeds/indicators/download?fmt=csv", app.address))
        .header("X-Partner-API-Key", key.expose())
        .header("Accept-Encoding", "gzip")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    let (green, _) = app.create_key(&["tlp:green"], None).await;
    let rejected = app.get("/feeds/indicators/download", Some(&green)).await;
    assert_eq!(
        rejected.status(),
        StatusCode::FORBIDDEN,
        "the download holds AMBER rows"
    );
}

#[tokio::test]
async fn health_routes_need_no_key() {
    let Some(app) = spawn_app(Backend::Sqlite, indicators(10, 18, base_time())).await else {
        return;
    };
    let (key, _) = app.create_key(&[], None).await;
    app.get("/feeds/indicators", Some(&key)).await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for name in [
        "partner_feed_http_requests_total{route=\"/feeds/indicators\",status=\"200\"} 1",
        "partner_feed_http_request_duration_seconds_bucket",
        "partner_feed_audit_queue_depth",
        "partner_feed_audit_spooled_records",
        "partner_feed_snapshot_info{snapshot_id=",
        "partner_feed_snapshot_age_seconds",
        "partner_feed_rate_limited_requests_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(!metrics.contains(&key.prefix()));
    assert!(!metrics.contains("Example Bank"));
}
