//! Benchmarks of the edge's per-request work: key hashing and cached lookup, the rate-limit
//! check, query parsing, filtering a 1,000,000-indicator index and rendering 500-row pages.

// `criterion_group!` generates a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

use partner_feed_edge::auth::KeyCache;
use partner_feed_edge::index::{CategorySelection, Selection, SnapshotIndex};
use partner_feed_edge::query::{parse_pairs, parse_params, resolve, FEED_PARAMETERS};
use partner_feed_edge::rate_limit::RateLimiter;
use partner_feed_shared::config::PartnerFeedSettings;
use partner_feed_shared::db::{Database, NewPartnerKey};
use partner_feed_shared::keys::{KeyScopes, RawKey};
use partner_feed_shared::render::{render_page, Pagination, SnapshotInfo};
use partner_feed_shared::snapshot::Format;
use partner_feed_shared::{Indicator, IndicatorType, Status, Tlp};

/// Indicators in the filtering benchmark's index.
const INDEX_SIZE: usize = 1_000_000;

/// Rows on a rendered page: the default `max_page_size`.
const PAGE_ROWS: usize = 500;

const CATEGORIES: [&str; 6] = [
    "phishing",
    "investment_scam",
    "crypto_drainer",
    "malware_download",
    "tech_support_scam",
    "romance_scam",
];

fn indicators(count: usize) -> Vec<Indicator> {
    let newest = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    (0..count)
        .map(|i| {
            let updated_at = newest - chrono::Duration::seconds(i as i64);
            Indicator {
                id: uuid::Uuid::from_u128(i as u128).to_string(),
                indicator_type: IndicatorType::Url,
                value: format!("http://host-{i}.example/login?session={i}"),
                category: CATEGORIES[i % CATEGORIES.len()].to_owned(),
                risk_score: (i % 4 != 0).then_some((i % 101) as f64),
                confidence: Some((i % 100) as i32),
                tlp: Tlp::ALL[i % 4],
                tags: vec!["bench".to_owned(), format!("batch-{}", i % 10)],
                description: (i % 3 == 0).then(|| "Credential phishing page".to_owned()),
                first_seen: updated_at - chrono::Duration::days(3),
                last_seen: updated_at,
                created_at: updated_at - chrono::Duration::days(3),
                updated_at,
                status: if i % 50 == 0 {
                    Status::Revoked
                } else {
                    Status::Active
                },
            }
        })
        .collect()
}

fn key_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let raw = RawKey::generate();
    let cache = runtime.block_on(async {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let new_key = NewPartnerKey {
            partner_name: "Bench".to_owned(),
            scopes: Vec::new(),
            rate_limit_per_minute: None,
            expires_at: None,
            created_by: None,
        };
        db.insert_partner_key(&raw, &new_key).await.unwrap();
        KeyCache::new(db, Duration::from_secs(3600))
    });
    c.bench_function("key_hash_sha256", |b| b.iter(|| black_box(&raw).hash()));
    c.bench_function("key_lookup_cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { cache.lookup(black_box(&raw)).await.unwrap() })
    });
}

fn rate_limit(c: &mut Criterion) {
    let limiter = RateLimiter::new();
    let key_ids: Vec<String> = (0..1_000).map(|i| format!("key-{i}")).collect();
    let mut next = 0;
    c.bench_function("rate_limit_check_1000_keys", |b| {
        b.iter(|| {
            next = (next + 1) % key_ids.len();
            limiter.check(&key_ids[next], 1_000_000)
        })
    });
}

fn query_parsing(c: &mut Criterion) {
    let feed = PartnerFeedSettings::default();
    let scopes =
        KeyScopes::parse(&["tlp:amber", "category:phishing", "category:crypto_drainer"]).unwrap();
    let raw = "category=Phishing&minRiskScore=42.5&since=2026-02-01T10%3A00%3A00.250%2B02%3A00\
               &tlp=TLP%3AGREEN&page=3&pageSize=200&fmt=stix&snapshot=20260301T120000000Z-0badc0de";
    c.bench_function("query_parse_and_resolve", |b| {
        b.iter(|| {
            let pairs = parse_pairs(black_box(raw));
            let params = parse_params(&pairs, FEED_PARAMETERS, 500).unwrap();
            resolve(&params, &scopes, &feed).unwrap()
        })
    });
}

fn filtering(c: &mut Criterion) {
    let index = SnapshotIndex::new(indicators(INDEX_SIZE));
    let base = Selection {
        categories: CategorySelection::All,
        min_risk_score: None,
        since: None,
        tlp: Tlp::Amber,
        include_revoked: false,
    };
    let mut group = c.benchmark_group("filter_1m_index");
    group.sample_size(10);
    group.bench_function("tlp_only", |b| {
        b.iter(|| index.select(black_box(&base)).len())
    });
    let one_category = Selection {
        categories: CategorySelection::One("phishing".to_owned()),
        min_risk_score: Some(50.0),
        ..base.clone()
    };
    group.bench_function("category_and_score", |b| {
        b.iter(|| index.select(black_box(&one_category)).len())
    });
    let scoped_since = Selection {
        categories: CategorySelection::AnyOf(vec![
            "phishing".to_owned(),
            "romance_scam".to_owned(),
        ]),
        since: Some(Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap()),
        include_revoked: true,
        ..base.clone()
    };
    group.bench_function("key_categories_and_since", |b| {
        b.iter(|| index.select(black_box(&scoped_since)).len())
    });
    group.finish();
}

fn rendering(c: &mut Criterion) {
    let rows = indicators(PAGE_ROWS);
    let snapshot = SnapshotInfo {
        id: "20260301T120000000Z-0badc0de".to_owned(),
        generated_at: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
    };
    let pagination = Pagination {
        page: 1,
        page_size: PAGE_ROWS as u64,
        total_items: 10_000,
        self_link: "/feeds/indicators?page=1&pageSize=500".to_owned(),
        next_link: Some("/feeds/indicators?page=2&pageSize=500".to_owned()),
    };
    let mut group = c.benchmark_group("render_500_rows");
    for format in Format::ALL {
        group.bench_function(format.as_str(), |b| {
            b.iter(|| render_page(format, rows.iter(), &snapshot, &pagination).len())
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    key_lookup,
    rate_limit,
    query_parsing,
    filtering,
    rendering
);
criterion_main!(benches);
