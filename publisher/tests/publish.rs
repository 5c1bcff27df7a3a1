//! Publisher runs against real databases and stores: SQLite with a local folder, PostgreSQL
//! with SeaweedFS S3, checked through the objects a reader would fetch.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use partner_feed_publisher::{PublishError, Publisher, RunOutcome};
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::{find_snapshot_run, Database, PublisherLock, RunStatus};
use partner_feed_shared::snapshot::{
    index_path, manifest_path, page_path, snapshot_prefix, Format, LATEST_PATH,
};
use partner_feed_shared::{Indicator, Status, Tlp};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use support::fixtures::{self, hostile_indicators, insert_indicators, publish_order};
use support::python;
use support::snapshot_reader::SnapshotReader;

/// Page size of the default pages in these tests, small so the fixtures span many pages.
const PAGE_SIZE: u32 = 20;

/// A database and a store that only this test uses, and a publisher over them.
struct TestFeed {
    db: Database,
    store: Arc<dyn ObjectStore>,
    settings: Settings,
    _folder: Option<TempDir>,
}

impl TestFeed {
    /// SQLite in a temporary folder, and a local-folder store beside it.
    async fn sqlite() -> TestFeed {
        let folder = tempfile::tempdir().expect("temporary folder");
        let db_url = format!("sqlite://{}", folder.path().join("feed.db").display());
        let objects = folder.path().join("objects");
        std::fs::create_dir_all(&objects).expect("objects folder");
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(&objects).expect("local store"));
        TestFeed::open(db_url, store, Some(folder)).await
    }

    /// Opens a fresh PostgreSQL database and S3 bucket from the test kit, or returns `None`
    /// when the servers are not installed (outside CI).
    async fn postgres_s3() -> Option<TestFeed> {
        let postgres = partner_feed_testkit::postgres()?;
        let s3 = partner_feed_testkit::s3()?;
        let db_url = postgres.create_database();
        let store = s3_store(s3, &s3.create_bucket(), "feed");
        Some(TestFeed::open(db_url, store, None).await)
    }

    async fn open(
        db_url: String,
        store: Arc<dyn ObjectStore>,
        folder: Option<TempDir>,
    ) -> TestFeed {
        let db = Database::connect(&db_url)
            .await
            .expect("connect to the test database");
        db.migrate().await.expect("migrate the test database");
        let mut settings = Settings::default();
        settings.database.url = db_url;
        settings.partner_feed.default_page_size = PAGE_SIZE;
        settings.publisher.retain_snapshots = 2;
        settings.publisher.pinned_snapshot_ttl_seconds = 0;
        TestFeed {
            db,
            store,
            settings,
            _folder: folder,
        }
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(&self.settings, self.db.clone(), self.store.clone())
    }

    async fn publish(&self) -> RunOutcome {
        self.publisher()
            .publish_once(&CancellationToken::new())
            .await
            .expect("publish")
    }

    async fn publish_new_snapshot(&self) -> String {
        match self.publish().await {
            RunOutcome::Published { snapshot_id, .. } => snapshot_id,
            other => panic!("expected a new snapshot, got {other:?}"),
        }
    }

    fn reader(&self) -> SnapshotReader {
        SnapshotReader::new(self.store.clone())
    }

    async fn run_status(&self, snapshot_id: &str) -> RunStatus {
        find_snapshot_run(&self.db, snapshot_id)
            .await
            .expect("read the run")
            .unwrap_or_else(|| panic!("no feed_snapshots row for {snapshot_id}"))
            .status
    }
}

/// Builds an S3 store on the test kit's server, under `prefix` of `bucket`.
fn s3_store(
    s3: &partner_feed_testkit::S3Server,
    bucket: &str,
    prefix: &str,
) -> Arc<dyn ObjectStore> {
    let env: std::collections::HashMap<String, String> = s3.env().into_iter().collect();
    let store = AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region(&env["AWS_REGION"])
        .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
        .build()
        .expect("S3 store");
    Arc::new(PrefixStore::new(store, prefix))
}

/// Publishes the hostile fixtures and checks every object a reader can fetch.
async fn check_published_fixtures(feed: &TestFeed) {
    let indicators = hostile_indicators();
    insert_indicators(&feed.db, &indicators).await;

    let outcome = feed.publish().await;
    let RunOutcome::Published {
        snapshot_id,
        indicators: indexed,
        pages,
        bytes,
        ..
    } = outcome
    else {
        panic!("expected a new snapshot, got {outcome:?}");
    };

    let reader = feed.reader();
    let latest = reader.latest().await.expect("latest.json exists");
    assert_eq!(latest.snapshot_id, snapshot_id);
    assert_eq!(latest.manifest, manifest_path(&snapshot_id));

    let manifest = reader.verified_manifest(&snapshot_id).await;
    let published = publish_order(&indicators);
    let default_rows: Vec<&Indicator> = published
        .iter()
        .filter(|row| row.status == Status::Active && row.tlp <= Tlp::Amber)
        .collect();
    assert_eq!(indexed, published.len() as u64);
    assert_eq!(manifest.indicator_count, published.len() as u64);
    assert_eq!(manifest.source_count, indicators.len() as u64);
    assert_eq!(
        manifest.watermark,
        indicators.iter().map(|row| row.updated_at).max()
    );
    assert_eq!(manifest.default_pages.tlp, Tlp::Amber);
    assert_eq!(manifest.default_pages.page_size, u64::from(PAGE_SIZE));
    assert_eq!(
        manifest.default_pages.total_items,
        default_rows.len() as u64
    );
    assert_eq!(manifest.default_pages.total_pages, pages);
    assert_eq!(
        pages,
        (default_rows.len() as u64).div_ceil(u64::from(PAGE_SIZE))
    );
    let object_bytes: u64 = manifest.objects.iter().map(|object| object.size).sum();
    assert!(bytes > object_bytes, "{bytes} must count the manifest too");

    assert_eq!(reader.index(&snapshot_id).await, published);
    check_counts(&manifest, &published);
    check_pages(&reader, &manifest, &default_rows).await;
    check_downloads(&reader, &snapshot_id, &default_rows).await;
    check_no_red_anywhere(&reader, &manifest, &indicators).await;
    assert_eq!(feed.run_status(&snapshot_id).await, RunStatus::Published);
}

fn check_counts(manifest: &partner_feed_shared::snapshot::Manifest, published: &[Indicator]) {
    let active = published.iter().filter(|row| row.status == Status::Active);
    let revoked = published.len() - active.clone().count();
    assert_eq!(
        manifest.counts.by_status.get("active").copied(),
        Some(active.clone().count() as u64)
    );
    assert_eq!(
        manifest.counts.by_status.get("revoked").copied(),
        Some(revoked as u64)
    );
    for tlp in [Tlp::Clear, Tlp::Green, Tlp::Amber, Tlp::AmberStrict] {
        let expected = active.clone().filter(|row| row.tlp == tlp).count() as u64;
        assert_eq!(
            manifest
                .counts
                .active_by_tlp
                .get(tlp.as_str())
                .copied()
                .unwrap_or(0),
            expected,
            "active rows at {tlp}"
        );
    }
    assert!(!manifest.counts.active_by_tlp.contains_key("TLP:RED"));
    let categories: u64 = manifest.counts.active_by_category.values().sum();
    assert_eq!(categories, active.count() as u64);
}

async fn check_pages(
    reader: &SnapshotReader,
    manifest: &partner_feed_shared::snapshot::Manifest,
    default_rows: &[&Indicator],
) {
    let snapshot_id = &manifest.snapshot_id;
    let total_pages = manifest.default_pages.total_pages;
    let mut listed_ids = Vec::new();
    for page in 1..=total_pages {
        let document = reader
            .json(&page_path(snapshot_id, Format::Json, page))
            .await;
        let rows = document["data"].as_array().expect("data is an array");
        let expected_rows = if page < total_pages {
            PAGE_SIZE as usize
        } else {
            default_rows.len() - (total_pages as usize - 1) * PAGE_SIZE as usize
        };
        assert_eq!(rows.len(), expected_rows, "rows on page {page}");
        assert_eq!(document["pagination"]["page"], page);
        assert_eq!(
            document["pagination"]["totalItems"],
            manifest.default_pages.total_items
        );
        assert_eq!(document["pagination"]["totalPages"], total_pages);
        assert_eq!(document["snapshot"]["id"], snapshot_id.as_str());
        assert_eq!(
            document["links"]["next"].is_string(),
            page < total_pages,
            "next link of page {page}"
        );
        if page < total_pages {
            let next = document["links"]["next"].as_str().unwrap();
            assert!(next.contains(&format!("page={}", page + 1)), "{next}");
            assert!(next.contains(&format!("snapshot={snapshot_id}")), "{next}");
        }
        listed_ids.extend(
            rows.iter()
                .map(|row| row["id"].as_str().unwrap().to_owned()),
        );

        for format in [Format::Csv, Format::Stix] {
            assert!(
                reader.exists(&page_path(snapshot_id, format, page)).await,
                "{format} page {page}"
            );
        }
    }
    let expected_ids: Vec<String> = default_rows.iter().map(|row| row.id.clone()).collect();
    assert_eq!(listed_ids, expected_ids, "default pages in publish order");
    assert!(
        !reader
            .exists(&page_path(snapshot_id, Format::Json, total_pages + 1))
            .await,
        "no page after the last"
    );
}

async fn check_downloads(reader: &SnapshotReader, snapshot_id: &str, default_rows: &[&Indicator]) {
    let expected_ids: Vec<&str> = default_rows.iter().map(|row| row.id.as_str()).collect();

    let json = reader.json_download(snapshot_id).await;
    let ids: Vec<&str> = json["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected_ids);
    assert!(json.get("pagination").is_none());

    let stix = reader.stix_download(snapshot_id).await;
    let indicator_count = stix["objects"]
        .as_array()
        .expect("objects is an array")
        .iter()
        .filter(|object| object["type"] == "indicator")
        .count();
    assert_eq!(indicator_count, default_rows.len());

    let csv = reader.csv_download(snapshot_id).await;
    assert!(csv.starts_with("id,type,value,"), "CSV header");
}

/// Searches every object for the ids and the marked values of the `TLP:RED` fixtures.
async fn check_no_red_anywhere(
    reader: &SnapshotReader,
    manifest: &partner_feed_shared::snapshot::Manifest,
    indicators: &[Indicator],
) {
    let red: Vec<&Indicator> = indicators
        .iter()
        .filter(|row| row.tlp == Tlp::Red)
        .collect();
    assert!(red.len() >= 10, "the fixtures hold RED rows");
    for object in &manifest.objects {
        let text = reader.text(&object.path).await;
        for row in &red {
            assert!(
                !text.contains(&row.id),
                "{} holds RED id {}",
                object.path,
                row.id
            );
            if row.value.contains("red-secret") {
                assert!(
                    !text.contains(&row.value),
                    "{} holds RED value {}",
                    object.path,
                    row.value
                );
            }
        }
        assert!(!text.contains("TLP:RED"), "{} names TLP:RED", object.path);
    }
}

#[tokio::test]
async fn sqlite_snapshot_matches_fixtures() {
    let feed = TestFeed::sqlite().await;
    check_published_fixtures(&feed).await;
}

#[tokio::test]
async fn postgres_s3_snapshot_matches_fixtures() {
    let Some(feed) = TestFeed::postgres_s3().await else {
        return;
    };
    check_published_fixtures(&feed).await;
}

async fn check_unchanged_change_and_retention(feed: &TestFeed) {
    let indicators = hostile_indicators();
    insert_indicators(&feed.db, &indicators).await;
    let first = feed.publish_new_snapshot().await;
    let objects_after_first = feed.reader().all_paths().await;

    let unchanged = feed.publish().await;
    let RunOutcome::Unchanged {
        run_id,
        latest_snapshot_id,
        indicators: counted,
        ..
    } = unchanged
    else {
        panic!("expected an unchanged run, got {unchanged:?}");
    };
    assert_eq!(latest_snapshot_id, first);
    assert_eq!(counted, publish_order(&indicators).len() as u64);
    assert_eq!(
        feed.reader().all_paths().await,
        objects_after_first,
        "an unchanged run writes nothing"
    );
    assert_eq!(feed.run_status(&run_id).await, RunStatus::Unchanged);

    fixtures::touch_indicator(&feed.db, &indicators[3].id).await;
    let second = feed.publish_new_snapshot().await;
    assert_ne!(second, first);
    assert_eq!(feed.reader().latest().await.unwrap().snapshot_id, second);
    let index = feed.reader().index(&second).await;
    assert_eq!(index[0].id, indicators[3].id, "the changed row comes first");

    // With retain_snapshots = 2 and no TTL, the third snapshot pushes the first out.
    fixtures::touch_indicator(&feed.db, &indicators[4].id).await;
    let third = feed.publish_new_snapshot().await;
    assert!(feed
        .reader()
        .paths_under(&snapshot_prefix(&first))
        .await
        .is_empty());
    assert_eq!(feed.run_status(&first).await, RunStatus::Deleted);
    feed.reader().verified_manifest(&second).await;
    feed.reader().verified_manifest(&third).await;
    assert_eq!(feed.run_status(&second).await, RunStatus::Published);
}

#[tokio::test]
async fn sqlite_unchanged_source_then_change_then_retention() {
    let feed = TestFeed::sqlite().await;
    check_unchanged_change_and_retention(&feed).await;
}

#[tokio::test]
async fn postgres_s3_unchanged_source_then_change_then_retention() {
    let Some(feed) = TestFeed::postgres_s3().await else {
        return;
    };
    check_unchanged_change_and_retention(&feed).await;
}

#[tokio::test]
async fn retention_keeps_snapshots_younger_than_the_ttl() {
    let mut feed = TestFeed::sqlite().await;
    feed.settings.publisher.retain_snapshots = 1;
    feed.settings.publisher.pinned_snapshot_ttl_seconds = 3600;
    let indicators = hostile_indicators();
    insert_indicators(&feed.db, &indicators[..30]).await;

    let first = feed.publish_new_snapshot().await;
    fixtures::touch_indicator(&feed.db, &indicators[0].id).await;
    let second = feed.publish_new_snapshot().await;

    feed.reader().verified_manifest(&first).await;
    feed.reader().verified_manifest(&second).await;
    assert_eq!(feed.run_status(&first).await, RunStatus::Published);
}

#[tokio::test]
async fn held_lock_rejects_a_second_run() {
    let feed = TestFeed::sqlite().await;
    insert_indicators(&feed.db, &hostile_indicators()[..10]).await;

    let lock = PublisherLock::try_acquire(&feed.db)
        .await
        .expect("take the lock");
    let error = feed
        .publisher()
        .publish_once(&CancellationToken::new())
        .await
        .expect_err("the lock is held");
    assert!(matches!(error, PublishError::LockHeld { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("another publisher run holds the lock"),
        "{error}"
    );
    assert!(feed.reader().latest().await.is_none());

    lock.release().await.unwrap();
    feed.publish_new_snapshot().await;
}

#[tokio::test]
async fn postgres_held_lock_rejects_a_second_run() {
    let Some(feed) = TestFeed::postgres_s3().await else {
        return;
    };
    let lock = PublisherLock::try_acquire(&feed.db)
        .await
        .expect("take the lock");
    let error = feed
        .publisher()
        .publish_once(&CancellationToken::new())
        .await
        .expect_err("the lock is held");
    assert!(matches!(error, PublishError::LockHeld { .. }), "{error:?}");

    drop(lock);
    // The dropped connection ends its session, which releases the advisory lock.
    let mut outcome = None;
    for _ in 0..50 {
        match feed
            .publisher()
            .publish_once(&CancellationToken::new())
            .await
        {
            Ok(published) => {
                outcome = Some(published);
                break;
            }
            Err(PublishError::LockHeld { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        matches!(outcome, Some(RunOutcome::Published { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn empty_source_publishes_an_empty_snapshot() {
    let feed = TestFeed::sqlite().await;

    let snapshot_id = feed.publish_new_snapshot().await;

    let reader = feed.reader();
    let manifest = reader.verified_manifest(&snapshot_id).await;
    assert_eq!(manifest.indicator_count, 0);
    assert_eq!(manifest.default_pages.total_items, 0);
    assert_eq!(manifest.default_pages.total_pages, 0);
    assert_eq!(manifest.watermark, None);
    assert!(reader.index(&snapshot_id).await.is_empty());
    assert_eq!(
        reader.json_download(&snapshot_id).await["data"],
        serde_json::json!([])
    );
    assert!(
        !reader
            .exists(&page_path(&snapshot_id, Format::Json, 1))
            .await
    );

    let again = feed.publish().await;
    assert!(matches!(again, RunOutcome::Unchanged { .. }), "{again:?}");
}

#[tokio::test]
async fn leftovers_of_dead_runs_are_removed() {
    let feed = TestFeed::sqlite().await;
    insert_indicators(&feed.db, &hostile_indicators()[..40]).await;
    let published = feed.publish_new_snapshot().await;

    // A run that died mid-write leaves a `running` row and objects without a manifest.
    let dead = "20200101T000000000Z-0badf00d";
    partner_feed_shared::db::insert_running_snapshot(
        &feed.db,
        dead,
        Utc::now() - Duration::hours(1),
        &snapshot_prefix(dead),
    )
    .await
    .unwrap();
    let orphan = "20200101T000000000Z-00000001";
    for path in [
        index_path(dead),
        page_path(dead, Format::Json, 1),
        page_path(orphan, Format::Csv, 3),
    ] {
        feed.store
            .put(&Path::from(path), b"partial".to_vec().into())
            .await
            .unwrap();
    }

    fixtures::touch_indicator(&feed.db, &hostile_indicators()[0].id).await;
    let next = feed.publish_new_snapshot().await;

    let reader = feed.reader();
    assert!(reader.paths_under(&snapshot_prefix(dead)).await.is_empty());
    assert!(reader
        .paths_under(&snapshot_prefix(orphan))
        .await
        .is_empty());
    assert_eq!(feed.run_status(dead).await, RunStatus::Failed);
    reader.verified_manifest(&published).await;
    reader.verified_manifest(&next).await;
}

#[tokio::test]
async fn cancelled_run_keeps_the_latest_snapshot() {
    let feed = TestFeed::sqlite().await;
    let indicators = hostile_indicators();
    insert_indicators(&feed.db, &indicators[..50]).await;
    let first = feed.publish_new_snapshot().await;
    insert_indicators(&feed.db, &indicators[50..]).await;

    let cancel = CancellationToken::new();
    cancel.cancel();
    let error = feed
        .publisher()
        .publish_once(&cancel)
        .await
        .expect_err("cancelled");

    assert!(matches!(error, PublishError::Cancelled), "{error:?}");
    assert_eq!(feed.reader().latest().await.unwrap().snapshot_id, first);
    let runs: BTreeSet<String> = feed.reader().snapshot_folders().await;
    assert!(runs.contains(&first));
    let next = feed.publish_new_snapshot().await;
    assert_eq!(
        feed.reader().snapshot_folders().await,
        BTreeSet::from([first, next]),
        "the cancelled run's objects are gone"
    );
}

#[tokio::test]
async fn changed_default_page_size_publishes_again() {
    let mut feed = TestFeed::sqlite().await;
    insert_indicators(&feed.db, &hostile_indicators()[..60]).await;
    feed.publish_new_snapshot().await;

    feed.settings.partner_feed.default_page_size = 7;
    let snapshot_id = feed.publish_new_snapshot().await;

    let manifest = feed.reader().verified_manifest(&snapshot_id).await;
    assert_eq!(manifest.default_pages.page_size, 7);
}

async fn check_python_tools_accept_fixture_pages(feed: &TestFeed) {
    let Some(tools) = partner_feed_testkit::python_tools() else {
        return;
    };
    insert_indicators(&feed.db, &hostile_indicators()).await;
    let snapshot_id = feed.publish_new_snapshot().await;

    let folder = tempfile::tempdir().unwrap();
    let files = feed
        .reader()
        .export_pages(&snapshot_id, folder.path(), true)
        .await;
    assert!(files.stix.len() > 3, "several STIX pages");
    python::validate_stix(tools, &files.stix);
    python::compare_csv_with_json(tools, &files.csv_json_pairs);
}

#[tokio::test]
async fn stix_and_csv_pages_pass_python_checks() {
    let feed = TestFeed::sqlite().await;
    check_python_tools_accept_fixture_pages(&feed).await;
}

#[tokio::test]
async fn urlhaus_snapshot_pages_pass_python_checks() {
    let Some(tools) = partner_feed_testkit::python_tools() else {
        return;
    };
    let mut feed = TestFeed::sqlite().await;
    feed.settings.partner_feed.default_page_size = 500;
    let csv = partner_feed_testkit::shared_data_dir().join("urlhaus-online-2025-04-21.csv");
    let counts = partner_feed_shared::import::import_file(
        &feed.db,
        &csv,
        partner_feed_shared::import::ImportFormat::Urlhaus,
        |_| {},
    )
    .await
    .expect("import the URLhaus dump");
    assert!(counts.inserted > 11_000, "{counts:?}");

    let snapshot_id = feed.publish_new_snapshot().await;

    let reader = feed.reader();
    let manifest = reader.verified_manifest(&snapshot_id).await;
    assert_eq!(manifest.indicator_count, counts.inserted);
    let folder = tempfile::tempdir().unwrap();
    let files = reader
        .export_pages(&snapshot_id, folder.path(), false)
        .await;
    assert_eq!(files.stix.len() as u64, manifest.default_pages.total_pages);
    python::validate_stix(tools, &files.stix);
    python::compare_csv_with_json(tools, &files.csv_json_pairs);
}

#[tokio::test]
async fn only_latest_remains_when_every_limit_is_passed() {
    let mut feed = TestFeed::sqlite().await;
    feed.settings.publisher.retain_snapshots = 1;
    let indicators = hostile_indicators();
    insert_indicators(&feed.db, &indicators[..20]).await;

    let mut snapshot_ids = Vec::new();
    for row in &indicators[..3] {
        snapshot_ids.push(feed.publish_new_snapshot().await);
        fixtures::touch_indicator(&feed.db, &row.id).await;
    }

    let latest = feed.reader().latest().await.unwrap().snapshot_id;
    assert_eq!(&latest, snapshot_ids.last().unwrap());
    assert_eq!(
        feed.reader().snapshot_folders().await,
        BTreeSet::from([latest.clone()])
    );
    assert!(feed.reader().exists(LATEST_PATH).await);
}

#[tokio::test]
async fn scheduler_publishes_on_ticks_until_cancelled() {
    let mut feed = TestFeed::sqlite().await;
    feed.settings.publisher.schedule = "* * * * * *".to_owned();
    insert_indicators(&feed.db, &hostile_indicators()[..20]).await;
    let publisher = feed.publisher();
    let cancel = CancellationToken::new();
    let scheduler = tokio::spawn({
        let cancel = cancel.clone();
        async move { publisher.run_scheduled(cancel).await }
    });

    let mut waited = 0;
    while feed.reader().latest().await.is_none() {
        assert!(waited < 100, "no snapshot published within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    cancel.cancel();

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), scheduler)
        .await
        .expect("the scheduler stops after cancellation")
        .expect("the scheduler task does not panic");
    assert!(stopped.is_ok(), "{stopped:?}");
    let latest = feed.reader().latest().await.unwrap();
    feed.reader().verified_manifest(&latest.snapshot_id).await;
}

#[tokio::test]
async fn scheduler_rejects_an_invalid_schedule() {
    let mut feed = TestFeed::sqlite().await;
    feed.settings.publisher.schedule = "every quarter hour".to_owned();

    let error = feed
        .publisher()
        .run_scheduled(CancellationToken::new())
        .await
        .expect_err("invalid schedule");

    assert!(
        matches!(error, PublishError::InvalidSchedule { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("every quarter hour"), "{error}");
}
