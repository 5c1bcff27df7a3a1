//! End-to-end test on real data: import, publish, serve, and sync as a partner would, through
//! the `partner-feed` binary, HTTP and the admin SQL of the README.

mod e2e_support;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use e2e_support::{
    generate_scored_csv, python_csv_rows, stix_validator_report, Edge, Product, SyncQuery,
    SCORED_ROWS,
};
use serde_json::Value;

const URLHAUS_ROWS: u64 = 11_125;
const SCAMSNIFFER_ROWS: u64 = 353_408;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partner_sync_on_sqlite_and_local_files() {
    let product = Product::sqlite_local();
    full_partner_sync(&product, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partner_sync_on_postgres_and_s3() {
    let Some(product) = Product::postgres_s3() else {
        return;
    };
    full_partner_sync(&product, true).await;
}

async fn full_partner_sync(product: &Product, with_scamsniffer: bool) {
    let data = partner_feed_testkit::shared_data_dir();
    let urlhaus = data.join("urlhaus-online-2025-04-21.csv");
    let report = product.run_ok(&["import", urlhaus.to_str().unwrap(), "--format", "urlhaus"]);
    assert!(
        report.contains(&format!("inserted {URLHAUS_ROWS},")),
        "{report}"
    );
    let mut expected_rows = URLHAUS_ROWS;
    if with_scamsniffer {
        let scamsniffer = data.join("scamsniffer-2022-05-31_2026-08-15.csv.gz");
        let report = product.run_ok(&["import", scamsniffer.to_str().unwrap()]);
        assert!(
            report.contains(&format!("inserted {SCAMSNIFFER_ROWS},")),
            "{report}"
        );
        expected_rows += SCAMSNIFFER_ROWS;
    }
    let scored = product.dir.path().join("scored.csv");
    std::fs::write(&scored, generate_scored_csv()).unwrap();
    let report = product.run_ok(&["import", scored.to_str().unwrap()]);
    assert!(
        report.contains(&format!("inserted {SCORED_ROWS},")),
        "{report}"
    );
    expected_rows += SCORED_ROWS as u64;
    assert_eq!(product.count_rows("indicators").await, expected_rows);

    product.run_ok(&["publish", "--once"]);
    let mut edge = product.spawn_edge();
    let raw_key = product.create_key_as_readme_says();
    product.admin_sql(&format!(
        "UPDATE partner_api_keys SET rate_limit_per_minute = 1000000 WHERE key_prefix = '{}'",
        &raw_key[..8]
    ));
    // The key cache keeps the old limit for at most key_cache_ttl_seconds (1 in these tests).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let manifest = product.latest_manifest().await;
    let source = product.read_indicators().await;
    check_full_sync(&edge, &raw_key, &manifest, &source).await;
    check_filtered_syncs(&edge, &raw_key, &source).await;

    let changed_since = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (updated_ids, revoked_ids) = product.update_and_revoke_some(&source);
    product.run_ok(&["publish", "--once"]);
    edge.wait_for_snapshot_change(&raw_key, &manifest.snapshot_id)
        .await;
    check_incremental_sync(&edge, &raw_key, changed_since, &updated_ids, &revoked_ids).await;

    let requests = edge.requests_made();
    edge.stop_gracefully();
    assert_eq!(
        product.count_rows("partner_feed_audit").await,
        requests,
        "one audit row per request"
    );
    product.assert_raw_key_absent(&raw_key, &edge.log).await;
}

async fn check_full_sync(
    edge: &Edge,
    key: &str,
    manifest: &e2e_support::Manifest,
    source: &[e2e_support::SourceRow],
) {
    let expected = e2e_support::expected_ids(source, &SyncQuery::default());
    assert_eq!(
        manifest.default_total,
        expected.len() as u64,
        "manifest total of the default listing"
    );

    let json = edge.walk(key, &SyncQuery::default(), "json").await;
    assert_eq!(json.total_header_or_body, expected.len() as u64);
    assert_eq!(
        json.ids, expected,
        "JSON walk returns every indicator once, in publish order"
    );

    let csv = edge.walk(key, &SyncQuery::default(), "csv").await;
    assert_eq!(
        csv.ids, expected,
        "CSV walk returns every indicator once, in publish order"
    );
    let parsed = python_csv_rows(&csv.bodies);
    assert_eq!(parsed.len(), json.records.len());
    for (csv_row, json_row) in parsed.iter().zip(&json.records) {
        e2e_support::assert_csv_matches_json(csv_row, json_row);
    }

    let stix = edge.walk(key, &SyncQuery::default(), "stix").await;
    assert_eq!(
        stix.ids, expected,
        "STIX walk returns every indicator once, in publish order"
    );
    let sample = e2e_support::fixed_sample(&stix.bodies, 6);
    let report = stix_validator_report(&sample);
    assert!(
        report.is_clean(),
        "stix2_validator --strict on a sample of pages: {}",
        report.output
    );
}

async fn check_filtered_syncs(edge: &Edge, key: &str, source: &[e2e_support::SourceRow]) {
    let urlhaus_query = SyncQuery {
        category: Some("malware_download".to_owned()),
        ..SyncQuery::default()
    };
    let stix = edge.walk(key, &urlhaus_query, "stix").await;
    assert_eq!(stix.ids, e2e_support::expected_ids(source, &urlhaus_query));
    let report = stix_validator_report(&stix.bodies);
    assert!(
        report.is_clean(),
        "stix2_validator --strict on every URLhaus page: {}",
        report.output
    );

    let queries = [
        SyncQuery {
            category: Some("CRYPTO_DRAINER".to_owned()),
            ..SyncQuery::default()
        },
        SyncQuery {
            min_risk_score: Some(50.0),
            ..SyncQuery::default()
        },
        SyncQuery {
            tlp: Some("green".to_owned()),
            ..SyncQuery::default()
        },
        SyncQuery {
            since: Some("2025-04-01".to_owned()),
            ..SyncQuery::default()
        },
        SyncQuery {
            category: Some("phishing".to_owned()),
            min_risk_score: Some(20.5),
            since: Some("2026-01-01T00:00:00+02:00".to_owned()),
            tlp: Some("tlp:Amber".to_owned()),
        },
    ];
    for query in &queries {
        let expected = e2e_support::expected_ids(source, query);
        for format in ["json", "csv"] {
            let walk = edge.walk(key, query, format).await;
            assert_eq!(
                walk.total_header_or_body,
                expected.len() as u64,
                "{query:?} {format} total"
            );
            assert_eq!(walk.ids, expected, "{query:?} {format}");
        }
    }
}

async fn check_incremental_sync(
    edge: &Edge,
    key: &str,
    since: DateTime<Utc>,
    updated: &HashSet<String>,
    revoked: &HashSet<String>,
) {
    let query = SyncQuery {
        since: Some(since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ..SyncQuery::default()
    };
    let json = edge.walk(key, &query, "json").await;
    let returned: HashSet<String> = json.ids.iter().cloned().collect();
    let changed: HashSet<String> = updated.union(revoked).cloned().collect();
    assert_eq!(
        returned, changed,
        "since returns exactly the changed indicators"
    );
    let statuses: BTreeMap<String, String> = json
        .records
        .iter()
        .map(|record| {
            (
                record["id"].as_str().unwrap().to_owned(),
                record["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for id in revoked {
        assert_eq!(statuses[id], "revoked", "tombstone of {id}");
    }
    for id in updated {
        assert_eq!(statuses[id], "active", "update of {id}");
    }

    let stix = edge.walk(key, &query, "stix").await;
    let mut revoked_in_stix = 0;
    for body in &stix.bodies {
        let bundle: Value = serde_json::from_slice(body).unwrap();
        for object in bundle["objects"].as_array().unwrap() {
            if object["type"] == "indicator" && object["revoked"] == Value::Bool(true) {
                revoked_in_stix += 1;
            }
        }
    }
    assert_eq!(
        revoked_in_stix,
        revoked.len(),
        "revoked: true on every STIX tombstone"
    );
    let report = stix_validator_report(&stix.bodies);
    assert!(
        report.is_clean(),
        "stix2_validator --strict on the incremental pages: {}",
        report.output
    );
}
