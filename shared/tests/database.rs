//! The same database tests on SQLite (a temporary file) and on PostgreSQL (a fresh database).
//!
//! Each test is written once as an `async fn` taking an unmigrated [`Database`];
//! `database_tests!` runs it as `sqlite::<name>` and as `postgres::<name>`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use partner_feed_shared::db::{Database, Dialect, NewPartnerKey, PartnerKey};
use partner_feed_shared::keys::RawKey;
use partner_feed_shared::on_pool;
use tempfile::TempDir;

/// Columns of the tables whose columns the product documentation fixes, in any order.
const DOCUMENTED_TABLES: [(&str, &[&str]); 3] = [
    (
        "indicators",
        &[
            "indicator_id",
            "indicator_type",
            "value",
            "category",
            "risk_score",
            "confidence",
            "tlp",
            "tags",
            "description",
            "first_seen",
            "last_seen",
            "created_at",
            "updated_at",
            "status",
        ],
    ),
    (
        "partner_api_keys",
        &[
            "key_id",
            "partner_name",
            "key_hash",
            "key_prefix",
            "scopes",
            "rate_limit_per_minute",
            "is_active",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
        ],
    ),
    (
        "partner_feed_audit",
        &[
            "audit_id",
            "key_id",
            "partner_name",
            "key_prefix",
            "endpoint",
            "method",
            "query_params",
            "result_count",
            "response_code",
            "ip_address",
            "user_agent",
            "snapshot_id",
            "latency_ms",
            "created_at",
        ],
    ),
];

/// Columns `feed_snapshots` must have; the publisher may keep more.
const SNAPSHOT_COLUMNS: &[&str] = &[
    "snapshot_id",
    "started_at",
    "finished_at",
    "status",
    "indicator_count",
    "watermark",
    "object_prefix",
    "bytes",
];

macro_rules! database_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (db, _dir) = super::sqlite_database().await;
                    super::$name(db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = super::postgres_database().await else {
                        return;
                    };
                    super::$name(db).await;
                }
            )*
        }
    };
}

database_tests!(
    migrations_apply_once_and_rerun_as_no_op,
    documented_tables_have_exactly_their_columns,
    feed_snapshots_has_the_publisher_columns,
    inserted_key_is_found_by_its_hash,
    unknown_hash_finds_no_key,
    second_key_with_same_hash_is_rejected,
    keys_are_listed_newest_first,
    revoking_deactivates_only_that_key,
    key_lookup_matches_id_or_leading_prefix,
    key_use_time_only_moves_forward,
    ping_succeeds,
);

async fn sqlite_database() -> (Database, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("feed.db").display());
    let db = Database::connect(&url)
        .await
        .expect("open the SQLite database");
    (db, dir)
}

async fn postgres_database() -> Option<Database> {
    let server = partner_feed_testkit::postgres()?;
    let db = Database::connect(&server.create_database())
        .await
        .expect("connect to the PostgreSQL database");
    Some(db)
}

async fn migrated(db: Database) -> Database {
    db.migrate().await.expect("apply the migrations");
    db
}

async fn migrations_apply_once_and_rerun_as_no_op(db: Database) {
    let expected_versions = migration_versions(db.dialect());
    assert!(!expected_versions.is_empty(), "no migration files found");

    let db = migrated(db).await;
    assert_eq!(applied_versions(&db).await, expected_versions);
    let key = insert_key(&db, "Survivor", "before the second migrate").await;

    db.migrate()
        .await
        .expect("apply the migrations a second time");
    assert_eq!(applied_versions(&db).await, expected_versions);
    let keys = db.list_partner_keys().await.expect("list keys");
    assert_eq!(keys.len(), 1, "the second migrate dropped or added rows");
    assert_eq!(keys[0].key_id, key.key_id);
}

async fn documented_tables_have_exactly_their_columns(db: Database) {
    let db = migrated(db).await;
    for (table, columns) in DOCUMENTED_TABLES {
        select_nothing(&db, table, columns).await;
        let expected: BTreeSet<String> = columns.iter().map(|name| name.to_string()).collect();
        assert_eq!(
            column_names(&db, table).await,
            expected,
            "columns of {table}"
        );
    }
}

async fn feed_snapshots_has_the_publisher_columns(db: Database) {
    let db = migrated(db).await;
    select_nothing(&db, "feed_snapshots", SNAPSHOT_COLUMNS).await;
    let present = column_names(&db, "feed_snapshots").await;
    for column in SNAPSHOT_COLUMNS {
        assert!(present.contains(*column), "feed_snapshots lacks {column}");
    }
}

async fn inserted_key_is_found_by_its_hash(db: Database) {
    let db = migrated(db).await;
    let raw = RawKey::generate();
    // Whole seconds, because PostgreSQL keeps microseconds and chrono nanoseconds.
    let expires_at = whole_seconds(Utc::now() + TimeDelta::days(30));
    let new_key = NewPartnerKey {
        partner_name: "Example Bank".to_owned(),
        scopes: vec!["tlp:green".to_owned(), "category:phishing".to_owned()],
        rate_limit_per_minute: Some(120),
        expires_at: Some(expires_at),
        created_by: Some("admin@example.org".to_owned()),
    };
    let inserted = db
        .insert_partner_key(&raw, &new_key)
        .await
        .expect("insert the key");

    let found = db
        .find_partner_key_by_hash(&raw.hash())
        .await
        .expect("look up the key")
        .expect("the key is found by its hash");
    assert_eq!(found.key_id, inserted.key_id);
    assert_eq!(found.partner_name, "Example Bank");
    assert_eq!(found.key_prefix, raw.expose()[..8]);
    assert_eq!(found.scopes, new_key.scopes);
    assert_eq!(found.rate_limit_per_minute, Some(120));
    assert!(found.is_active);
    assert_eq!(found.created_by.as_deref(), Some("admin@example.org"));
    assert_eq!(found.expires_at, Some(expires_at));
    assert_eq!(found.last_used_at, None);
    let created_drift = (found.created_at - inserted.created_at).abs();
    assert!(
        created_drift < TimeDelta::milliseconds(1),
        "stored created_at {} differs from returned {}",
        found.created_at,
        inserted.created_at
    );
}

async fn unknown_hash_finds_no_key(db: Database) {
    let db = migrated(db).await;
    insert_key(&db, "Example Bank", "known key").await;

    let unknown = RawKey::from_presented("not-a-key-anyone-was-given");
    let found = db
        .find_partner_key_by_hash(&unknown.hash())
        .await
        .expect("look up the key");
    assert_eq!(found, None);
}

async fn second_key_with_same_hash_is_rejected(db: Database) {
    let db = migrated(db).await;
    let raw = RawKey::generate();
    db.insert_partner_key(&raw, &new_key("First Partner"))
        .await
        .expect("insert the first key");

    let second = db
        .insert_partner_key(&raw, &new_key("Second Partner"))
        .await;
    assert!(second.is_err(), "a duplicate key_hash was stored");
    assert_eq!(db.list_partner_keys().await.expect("list keys").len(), 1);
}

async fn keys_are_listed_newest_first(db: Database) {
    let db = migrated(db).await;
    let older = insert_key(&db, "Older Partner", "older key").await;
    // PostgreSQL keeps microseconds: the pause makes the creation times differ.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let newer = insert_key(&db, "Newer Partner", "newer key").await;

    let listed = db.list_partner_keys().await.expect("list keys");
    let ids: Vec<&str> = listed.iter().map(|key| key.key_id.as_str()).collect();
    assert_eq!(ids, [newer.key_id.as_str(), older.key_id.as_str()]);
}

async fn revoking_deactivates_only_that_key(db: Database) {
    let db = migrated(db).await;
    let revoked_raw = RawKey::generate();
    let revoked = db
        .insert_partner_key(&revoked_raw, &new_key("Leaving Partner"))
        .await
        .expect("insert a key");
    let kept_raw = RawKey::generate();
    db.insert_partner_key(&kept_raw, &new_key("Staying Partner"))
        .await
        .expect("insert a key");

    let changed = db
        .revoke_partner_key(&revoked.key_id)
        .await
        .expect("revoke the key");
    assert!(changed, "revoking an existing key reported no change");

    let after = find_by_raw(&db, &revoked_raw).await;
    assert!(!after.is_active);
    assert!(find_by_raw(&db, &kept_raw).await.is_active);

    let unknown = db
        .revoke_partner_key("00000000-0000-4000-8000-000000000000")
        .await
        .expect("revoke an unknown key");
    assert!(!unknown, "revoking an unknown key reported a change");
}

async fn key_lookup_matches_id_or_leading_prefix(db: Database) {
    let db = migrated(db).await;
    let first = insert_key(
        &db,
        "First Partner",
        "Abcd1234-first-key-padding-to-43-characters",
    )
    .await;
    let second = insert_key(
        &db,
        "Second Partner",
        "Abcd5678-second-key-padding-to-43-character",
    )
    .await;
    // `_` is a LIKE wildcard: a LIKE-based lookup of "ab_d" would also match "abXd".
    let underscore = insert_key(
        &db,
        "Underscore Partner",
        "ab_d0000-third-key-padding-to-43-characters",
    )
    .await;
    insert_key(
        &db,
        "Lookalike Partner",
        "abXd0000-fourth-key-padding-to-43-characte",
    )
    .await;

    let lookup = |text: &'static str| {
        let db = db.clone();
        async move {
            let keys = db
                .find_partner_keys_by_id_or_prefix(text)
                .await
                .expect("look up keys");
            keys.into_iter()
                .map(|key| key.key_id)
                .collect::<BTreeSet<_>>()
        }
    };

    assert_eq!(
        lookup("Abcd1234").await,
        BTreeSet::from([first.key_id.clone()])
    );
    assert_eq!(
        lookup("Abcd").await,
        BTreeSet::from([first.key_id.clone(), second.key_id.clone()])
    );
    assert_eq!(
        lookup("ab_d").await,
        BTreeSet::from([underscore.key_id.clone()])
    );
    assert_eq!(lookup("Zzzz").await, BTreeSet::new());

    let by_id = db
        .find_partner_keys_by_id_or_prefix(&second.key_id)
        .await
        .expect("look up by id");
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].partner_name, "Second Partner");
}

async fn key_use_time_only_moves_forward(db: Database) {
    let db = migrated(db).await;
    let raw = RawKey::generate();
    let key = db
        .insert_partner_key(&raw, &new_key("Busy Partner"))
        .await
        .expect("insert a key");
    let used_at = whole_seconds(Utc::now());

    db.touch_partner_keys(&[(key.key_id.clone(), used_at)])
        .await
        .expect("record a use");
    assert_eq!(find_by_raw(&db, &raw).await.last_used_at, Some(used_at));

    let earlier = used_at - TimeDelta::minutes(5);
    db.touch_partner_keys(&[(key.key_id.clone(), earlier)])
        .await
        .expect("record an earlier use");
    assert_eq!(find_by_raw(&db, &raw).await.last_used_at, Some(used_at));

    let later = used_at + TimeDelta::minutes(5);
    db.touch_partner_keys(&[(key.key_id.clone(), later)])
        .await
        .expect("record a later use");
    assert_eq!(find_by_raw(&db, &raw).await.last_used_at, Some(later));
}

async fn ping_succeeds(db: Database) {
    db.ping().await.expect("ping an unmigrated database");
    let db = migrated(db).await;
    db.ping().await.expect("ping a migrated database");
}

fn new_key(partner_name: &str) -> NewPartnerKey {
    NewPartnerKey {
        partner_name: partner_name.to_owned(),
        scopes: Vec::new(),
        rate_limit_per_minute: None,
        expires_at: None,
        created_by: None,
    }
}

async fn insert_key(db: &Database, partner_name: &str, raw: &str) -> PartnerKey {
    db.insert_partner_key(&RawKey::from_presented(raw), &new_key(partner_name))
        .await
        .unwrap_or_else(|error| panic!("insert a key for {partner_name}: {error}"))
}

async fn find_by_raw(db: &Database, raw: &RawKey) -> PartnerKey {
    db.find_partner_key_by_hash(&raw.hash())
        .await
        .expect("look up the key")
        .expect("the key exists")
}

fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(time.timestamp(), 0).expect("a time in range")
}

/// Returns the versions of the migration files of `dialect`, in order.
fn migration_versions(dialect: Dialect) -> Vec<i64> {
    let folder = match dialect {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

async fn applied_versions(db: &Database) -> Vec<i64> {
    let sql = "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version";
    on_pool!(db, pool => sqlx::query_scalar(sql).fetch_all(pool).await)
        .expect("read the applied migrations")
}

/// Selects `columns` from `table` by name, which fails when one of them is missing.
async fn select_nothing(db: &Database, table: &str, columns: &[&str]) {
    let sql = format!("SELECT {} FROM {table} WHERE 1 = 0", columns.join(", "));
    let rows = on_pool!(db, pool => sqlx::query(&sql).fetch_all(pool).await.map(|rows| rows.len()))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    assert_eq!(rows, 0);
}

async fn column_names(db: &Database, table: &str) -> BTreeSet<String> {
    let names: Vec<String> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(pool)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table)
            .fetch_all(pool)
            .await
        }
    }
    .unwrap_or_else(|error| panic!("list the columns of {table}: {error}"));
    names.into_iter().collect()
}
