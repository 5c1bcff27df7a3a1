//! End-to-end tests of `partner-feed keys create|list|revoke` and of the CLI's configuration errors.

use std::process::{Command, Output};

use partner_feed_shared::db::Database;
use partner_feed_shared::on_pool;
use sha2::{Digest, Sha256};

/// A temporary working folder and database, and the `partner-feed` binary run inside them.
struct FeedCli {
    dir: tempfile::TempDir,
    database_url: String,
}

/// The stored columns of one key that the tests check.
#[derive(Debug, sqlx::FromRow)]
struct StoredKey {
    key_hash: String,
    key_prefix: String,
    is_active: bool,
    partner_name: String,
    created_by: Option<String>,
}

impl FeedCli {
    fn sqlite() -> FeedCli {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}", dir.path().join("feed.db").display());
        FeedCli { dir, database_url }
    }

    fn postgres() -> Option<FeedCli> {
        let server = partner_feed_testkit::postgres()?;
        Some(FeedCli {
            dir: tempfile::tempdir().unwrap(),
            database_url: server.create_database(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_partner-feed"));
        for (name, _) in std::env::vars() {
            if name.starts_with("I4G_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("I4G_DATABASE__URL", &self.database_url)
            .env("RUST_LOG", "info");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `keys create` and returns `(key_id, raw key, whole output)`.
    fn create_key(&self, extra: &[&str]) -> (String, String, Output) {
        let mut args = vec!["keys", "create", "--partner", "Acme Bank"];
        args.extend_from_slice(extra);
        let output = self.run(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} line in {text}"))
                .to_owned()
        };
        (field("key_id"), field("key"), output)
    }

    async fn stored_key(&self, key_id: &str) -> StoredKey {
        let db = Database::connect(&self.database_url).await.unwrap();
        let sql = "SELECT key_hash, key_prefix, is_active, partner_name, created_by \
                   FROM partner_api_keys WHERE key_id = $1";
        let row =
            on_pool!(&db, pool => sqlx::query_as(sql).bind(key_id).fetch_one(pool).await).unwrap();
        db.close().await;
        row
    }

    /// Stores a key with a chosen prefix through SQL, as an admin would.
    async fn insert_key_with_prefix(&self, key_id: &str, prefix: &str) {
        let db = Database::connect(&self.database_url).await.unwrap();
        db.migrate().await.unwrap();
        let sql = "INSERT INTO partner_api_keys (key_id, partner_name, key_hash, key_prefix, scopes, is_active, created_at) \
                   VALUES ($1, 'SQL Partner', $2, $3, '[]', TRUE, $4)";
        on_pool!(&db, pool => sqlx::query(sql)
            .bind(key_id)
            .bind(format!("{:x}", Sha256::digest(key_id.as_bytes())))
            .bind(prefix)
            .bind(chrono::Utc::now())
            .execute(pool)
            .await
            .map(|_| ()))
        .unwrap();
        db.close().await;
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn check_created_key_matches_stored_hash(cli: FeedCli) {
    let (key_id, raw, output) = cli.create_key(&["--created-by", "ops-team"]);

    assert_eq!(raw.len(), 43);
    assert!(raw
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'));
    let stored = cli.stored_key(&key_id).await;
    assert_eq!(stored.key_hash, hex::encode(Sha256::digest(raw.as_bytes())));
    assert_eq!(stored.key_prefix, raw[..8]);
    assert!(stored.is_active);
    assert_eq!(stored.partner_name, "Acme Bank");
    assert_eq!(stored.created_by.as_deref(), Some("ops-team"));
    assert!(stdout(&output).contains(&format!("prefix: {}\n", &raw[..8])));
    assert!(!stderr(&output).contains(&raw), "the raw key was logged");
}

#[tokio::test]
async fn created_key_matches_stored_hash_on_sqlite() {
    check_created_key_matches_stored_hash(FeedCli::sqlite()).await;
}

#[tokio::test]
async fn created_key_matches_stored_hash_on_postgres() {
    if let Some(cli) = FeedCli::postgres() {
        check_created_key_matches_stored_hash(cli).await;
    }
}

#[tokio::test]
async fn list_shows_keys_without_hashes() {
    let cli = FeedCli::sqlite();
    let (key_id, raw, _) = cli.create_key(&[
        "--rate-limit",
        "120",
        "--scope",
        "tlp:green",
        "--expires",
        "2099-01-31",
    ]);
    let stored = cli.stored_key(&key_id).await;

    let output = cli.run(&["keys", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|line| line.starts_with(&key_id))
        .unwrap();
    for expected in [
        "Acme Bank",
        &raw[..8],
        "tlp:green",
        "120/min",
        "yes",
        "2099-01-31T00:00:00Z",
    ] {
        assert!(row.contains(expected), "{expected:?} missing from {row:?}");
    }
    assert!(!table.contains(&stored.key_hash), "hash printed: {table}");
    assert!(!table.contains(&raw), "raw key printed: {table}");
}

#[tokio::test]
async fn revoke_by_prefix_deactivates_the_key() {
    let cli = FeedCli::sqlite();
    let (key_id, raw, _) = cli.create_key(&[]);

    let output = cli.run(&["keys", "revoke", &raw[..8]]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("revoked key {key_id}")));
    assert!(!cli.stored_key(&key_id).await.is_active);

    let list = stdout(&cli.run(&["keys", "list"]));
    let row = list.lines().find(|line| line.starts_with(&key_id)).unwrap();
    assert!(row.contains(" no "), "{row}");
}

#[tokio::test]
async fn revoke_of_unknown_key_exits_1() {
    let cli = FeedCli::sqlite();
    cli.create_key(&[]);

    let output = cli.run(&["keys", "revoke", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no partner key has the id or a prefix"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn ambiguous_prefix_revokes_nothing() {
    let cli = FeedCli::sqlite();
    let first = "11111111-1111-4111-8111-111111111111";
    let second = "22222222-2222-4222-8222-222222222222";
    cli.insert_key_with_prefix(first, "abcdefgh").await;
    cli.insert_key_with_prefix(second, "abcdxyzw").await;

    let output = cli.run(&["keys", "revoke", "abcd"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(errors.contains("matches 2 keys"), "{errors}");
    assert!(
        errors.contains(first) && errors.contains(second),
        "{errors}"
    );
    assert!(cli.stored_key(first).await.is_active);
    assert!(cli.stored_key(second).await.is_active);

    let output = cli.run(&["keys", "revoke", "abcde"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!cli.stored_key(first).await.is_active);
    assert!(cli.stored_key(second).await.is_active);
}

#[tokio::test]
async fn invalid_create_options_store_nothing() {
    let cli = FeedCli::sqlite();
    let cases: [(&[&str], &str); 4] = [
        (&["--scope", "tlp:red"], "invalid scope \"tlp:red\""),
        (&["--expires", "2001-01-01"], "is in the past"),
        (&["--expires", "next week"], "invalid timestamp"),
        (&["--rate-limit", "0"], "--rate-limit"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["keys", "create", "--partner", "Acme Bank"];
        args.extend_from_slice(extra);
        let output = cli.run(&args);
        assert!(!output.status.success(), "{extra:?} was accepted");
        assert!(
            stderr(&output).contains(message),
            "{extra:?}: {}",
            stderr(&output)
        );
        assert!(!stdout(&output).contains("key:"), "{extra:?} printed a key");
    }
    assert_eq!(stdout(&cli.run(&["keys", "list"])), "no partner keys\n");
}

#[tokio::test]
async fn invalid_setting_exits_2_naming_the_variable() {
    let cli = FeedCli::sqlite();
    let output = cli
        .command(&["keys", "list"])
        .env("I4G_PARTNER_FEED__MAX_PAGE_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("I4G_PARTNER_FEED__MAX_PAGE_SIZE"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn migrate_reports_applied_migrations_once() {
    let cli = FeedCli::sqlite();

    let first = cli.run(&["migrate"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("migration applied"),
        "{}",
        stderr(&first)
    );
    let second = cli.run(&["migrate"]);
    assert!(second.status.success());
    assert!(
        !stderr(&second).contains("migration applied"),
        "{}",
        stderr(&second)
    );
    assert!(stderr(&second).contains("applied=0"), "{}", stderr(&second));
}
