//! Faults around `partner-feed publish --once`: SIGKILL at random points of runs, a second
//! publisher while one runs, and unreachable storage or database.

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use partner_feed_shared::db::{list_published_snapshots, Database, LockError, PublisherLock};
use partner_feed_shared::on_pool;
use partner_feed_shared::snapshot::{LatestPointer, Manifest, LATEST_PATH, SNAPSHOTS_FOLDER};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Rows in the database of the kill tests: enough that a run lasts long enough to be
/// interrupted in each of its steps.
const KILL_TEST_ROWS: usize = 10_000;

/// Maximum time one `publish --once` may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A database, a store and the `partner-feed` binary configured for both through `I4G_*`.
struct FaultFeed {
    dir: tempfile::TempDir,
    database_url: String,
    storage_url: String,
    env: Vec<(String, String)>,
    store: Arc<dyn ObjectStore>,
}

impl FaultFeed {
    /// SQLite and a local-folder store in a temporary folder.
    fn sqlite() -> FaultFeed {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(&objects).unwrap();
        FaultFeed {
            database_url: format!("sqlite://{}", dir.path().join("feed.db").display()),
            storage_url: format!("file://{}", objects.display()),
            env: Vec::new(),
            store: Arc::new(LocalFileSystem::new_with_prefix(&objects).unwrap()),
            dir,
        }
    }

    /// Opens a fresh PostgreSQL database and S3 bucket, or returns `None` when the servers are
    /// not installed.
    fn postgres_s3() -> Option<FaultFeed> {
        let postgres = partner_feed_testkit::postgres()?;
        let s3 = partner_feed_testkit::s3()?;
        let bucket = s3.create_bucket();
        let env = s3.env();
        let settings: HashMap<String, String> = env.iter().cloned().collect();
        let store = AmazonS3Builder::new()
            .with_endpoint(s3.endpoint())
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region(&settings["AWS_REGION"])
            .with_access_key_id(&settings["AWS_ACCESS_KEY_ID"])
            .with_secret_access_key(&settings["AWS_SECRET_ACCESS_KEY"])
            .build()
            .unwrap();
        Some(FaultFeed {
            dir: tempfile::tempdir().unwrap(),
            database_url: postgres.create_database(),
            storage_url: format!("s3://{bucket}/feed"),
            env,
            store: Arc::new(PrefixStore::new(store, "feed")),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_partner-feed"));
        for (name, _) in std::env::vars() {
            if name.starts_with("I4G_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("I4G_DATABASE__URL", &self.database_url)
            .env("I4G_STORAGE__URL", &self.storage_url)
            .env("I4G_PARTNER_FEED__DEFAULT_PAGE_SIZE", "100")
            .env("I4G_PUBLISHER__RETAIN_SNAPSHOTS", "2")
            .env("I4G_PUBLISHER__PINNED_SNAPSHOT_TTL_SECONDS", "0")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        command
    }

    fn spawn_publish(&self) -> Child {
        self.command(&["publish", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start partner-feed publish")
    }

    fn publish(&self) -> Output {
        wait_with_timeout(self.spawn_publish())
    }

    fn publish_successfully(&self) {
        let output = self.publish();
        assert!(
            output.status.success(),
            "publish --once failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn database(&self) -> Database {
        let db = Database::connect(&self.database_url).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    async fn read(&self, path: &str) -> Option<Vec<u8>> {
        match self.store.get(&Path::from(path)).await {
            Ok(result) => Some(result.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(error) => panic!("read {path}: {error}"),
        }
    }

    /// Checks that `latest.json` names a snapshot whose manifest lists every object with the
    /// right size and SHA-256, and returns its id.
    async fn verified_latest(&self) -> String {
        let bytes = self.read(LATEST_PATH).await.expect("latest.json exists");
        let latest: LatestPointer = serde_json::from_slice(&bytes).expect("latest.json parses");
        let manifest_bytes = self.read(&latest.manifest).await.unwrap_or_else(|| {
            panic!("manifest {} of the latest snapshot exists", latest.manifest)
        });
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).expect("manifest parses");
        assert_eq!(manifest.snapshot_id, latest.snapshot_id);
        for object in &manifest.objects {
            let stored = self
                .read(&object.path)
                .await
                .unwrap_or_else(|| panic!("{} of the latest snapshot exists", object.path));
            assert_eq!(stored.len() as u64, object.size, "size of {}", object.path);
            assert_eq!(
                hex::encode(Sha256::digest(&stored)),
                object.sha256,
                "SHA-256 of {}",
                object.path
            );
        }
        latest.snapshot_id
    }

    /// Returns the snapshot folders that contain at least one object.
    async fn snapshot_folders(&self) -> BTreeSet<String> {
        let listed: Vec<_> = self
            .store
            .list(Some(&Path::from(SNAPSHOTS_FOLDER)))
            .try_collect()
            .await
            .unwrap();
        listed
            .iter()
            .filter_map(|meta| meta.location.as_ref().split('/').nth(1).map(str::to_owned))
            .collect()
    }
}

fn wait_with_timeout(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > RUN_TIMEOUT {
            child.kill().unwrap();
            panic!("partner-feed publish did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Inserts `count` generated indicators with ids from `first_id` on, in several TLPs, in one
/// transaction.
async fn insert_generated(db: &Database, first_id: usize, count: usize) {
    let base: DateTime<Utc> = "2025-04-21T12:00:00Z".parse().unwrap();
    let sql = "INSERT INTO indicators (indicator_id, indicator_type, value, category, risk_score, \
               confidence, tlp, tags, description, first_seen, last_seen, created_at, updated_at, status) \
               VALUES ($1, 'url', $2, 'phishing', 50, 80, $3, '[\"kill-test\"]', NULL, $4, $4, $4, $4, 'active')";
    on_pool!(db, pool => {
        let mut transaction = pool.begin().await.expect("begin the insert transaction");
        for n in first_id..first_id + count {
            let tlp = ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:RED"][n % 4];
            let time = base - chrono::Duration::seconds(n as i64);
            sqlx::query(sql)
                .bind(format!("kill-{n:08}"))
                .bind(format!("http://kill{n}.example/path?q='x')"))
                .bind(tlp)
                .bind(time)
                .execute(&mut *transaction)
                .await
                .expect("insert a generated indicator");
        }
        transaction.commit().await.expect("commit the generated indicators");
    });
}

/// Sets `updated_at` of some rows to now, so the next run has something to publish.
async fn change_rows(db: &Database, round: usize) {
    let now = Utc::now();
    let sql = "UPDATE indicators SET updated_at = $1 WHERE indicator_id = $2";
    on_pool!(db, pool => sqlx::query(sql)
        .bind(now)
        .bind(format!("kill-{:08}", round * 7))
        .execute(pool)
        .await
        .map(|_| ()))
    .expect("change a row");
}

/// Kills runs at random points `kills` times. After each kill the latest snapshot must be
/// complete, and the next run must succeed and remove what the killed run left.
async fn check_random_kills(feed: &FaultFeed, kills: usize) {
    let db = feed.database().await;
    insert_generated(&db, 0, KILL_TEST_ROWS).await;

    let started = Instant::now();
    feed.publish_successfully();
    let full_run = started.elapsed();
    feed.verified_latest().await;

    let mut rng = rand::thread_rng();
    for round in 0..kills {
        change_rows(&db, round).await;
        let before = feed.verified_latest().await;

        let delay = full_run.mul_f64(rng.gen_range(0.0..1.1));
        let mut child = feed.spawn_publish();
        std::thread::sleep(delay);
        child.kill().expect("send SIGKILL");
        child.wait().unwrap();

        wait_for_killed_lock_holder(&db).await;
        let after_kill = feed.verified_latest().await;
        assert!(
            after_kill >= before,
            "round {round}: latest.json went back from {before} to {after_kill}"
        );

        change_rows(&db, round + kills).await;
        feed.publish_successfully();
        let latest = feed.verified_latest().await;
        let kept: BTreeSet<String> = list_published_snapshots(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|run| run.snapshot_id)
            .collect();
        let folders = feed.snapshot_folders().await;
        assert!(folders.contains(&latest), "round {round}");
        assert!(
            folders.is_subset(&kept),
            "round {round}: folders {folders:?} include some that no published snapshot owns ({kept:?})"
        );
        assert!(
            folders.len() <= 2,
            "round {round}: retention keeps 2, found {folders:?}"
        );
    }
    db.close().await;
}

#[tokio::test]
async fn sqlite_publisher_survives_random_kills() {
    let feed = FaultFeed::sqlite();
    check_random_kills(&feed, 15).await;
}

#[tokio::test]
async fn postgres_s3_publisher_survives_random_kills() {
    let Some(feed) = FaultFeed::postgres_s3() else {
        return;
    };
    check_random_kills(&feed, 5).await;
}

#[tokio::test]
async fn second_publisher_exits_while_one_runs() {
    let feed = FaultFeed::sqlite();
    let db = feed.database().await;
    insert_generated(&db, 0, KILL_TEST_ROWS).await;

    let first = feed.spawn_publish();
    wait_for_running_row(&db).await;
    let second = feed.publish();
    let first = wait_with_timeout(first);

    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second publisher exits non-zero"
    );
    assert!(
        stderr.contains("another publisher run holds the lock"),
        "{stderr}"
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    feed.verified_latest().await;
}

#[tokio::test]
async fn held_lock_makes_publish_exit_non_zero() {
    let feed = FaultFeed::sqlite();
    let db = feed.database().await;
    insert_generated(&db, 0, 100).await;

    let lock = PublisherLock::try_acquire(&db).await.unwrap();
    let output = feed.publish();
    lock.release().await.unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another publisher run holds the lock"),
        "{stderr}"
    );
    assert!(feed.read(LATEST_PATH).await.is_none());
    feed.publish_successfully();
    feed.verified_latest().await;
}

/// Waits until the lock of a killed run is free. The kernel closes the killed process's
/// connections at once, but a PostgreSQL backend ends its session, and so releases the
/// advisory lock, only a moment later. A run started in that moment exits with "another
/// publisher run holds the lock", which is right, since the old session still holds it.
async fn wait_for_killed_lock_holder(db: &Database) {
    let started = Instant::now();
    loop {
        match PublisherLock::try_acquire(db).await {
            Ok(lock) => {
                lock.release().await.unwrap();
                return;
            }
            Err(LockError::Held { .. }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the lock of the killed run was not released within 30 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("checking the publisher lock: {error}"),
        }
    }
}

/// Waits until a run has recorded its start, which it does right after taking the lock.
async fn wait_for_running_row(db: &Database) {
    let started = Instant::now();
    loop {
        let running: i64 = on_pool!(db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM feed_snapshots WHERE status = 'running'"
        )
        .fetch_one(pool)
        .await)
        .unwrap();
        if running > 0 {
            return;
        }
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "no run started within {RUN_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Returns a loopback port that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_storage_fails_the_run_clearly() {
    let mut feed = FaultFeed::sqlite();
    let db = feed.database().await;
    insert_generated(&db, 0, 100).await;
    feed.storage_url = "s3://unreachable-bucket/feed".to_owned();
    feed.env = vec![
        (
            "AWS_ENDPOINT_URL".to_owned(),
            format!("http://127.0.0.1:{}", closed_port()),
        ),
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
    ];

    let output = feed.publish();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("object storage"), "{stderr}");
    assert!(stderr.contains("latest.json"), "{stderr}");
    let failed: Vec<(String, Option<String>)> = on_pool!(&db, pool => sqlx::query_as(
        "SELECT status, error FROM feed_snapshots"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "failed");
    assert!(
        failed[0]
            .1
            .as_deref()
            .unwrap_or("")
            .contains("object storage"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn unreachable_database_fails_the_run_clearly() {
    let mut feed = FaultFeed::sqlite();
    let db = feed.database().await;
    insert_generated(&db, 0, 100).await;
    feed.publish_successfully();
    let latest_before = feed.read(LATEST_PATH).await.unwrap();
    db.close().await;

    feed.database_url = format!("postgres://partner:secret@127.0.0.1:{}/feed", closed_port());
    let output = feed.publish();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is not printed: {stderr}"
    );
    assert_eq!(
        feed.read(LATEST_PATH).await.unwrap(),
        latest_before,
        "latest.json is untouched"
    );
}

#[test]
fn publish_help_describes_once() {
    let feed = FaultFeed::sqlite();
    let output = feed.command(&["publish", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("--once"), "{help}");
}
