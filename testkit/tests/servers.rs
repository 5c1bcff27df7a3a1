//! Checks that the test servers work as the product's tests use them, and leave nothing behind.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use partner_feed_testkit::{
    postgres, process_is_running, python_tools, s3, shared_data_dir, workspace_root,
};
use sqlx::postgres::PgPoolOptions;
use tempfile::TempDir;

/// Time a watchdog gets to stop a server and remove its folder.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn postgres_databases_are_empty_and_separate() {
    let Some(server) = postgres() else { return };
    let first_url = server.create_database();
    let second_url = server.create_database();
    assert_ne!(first_url, second_url);
    assert!(
        first_url.starts_with("postgres://postgres@127.0.0.1:"),
        "{first_url}"
    );

    let first = PgPoolOptions::new()
        .connect(&first_url)
        .await
        .expect("connect to the first database");
    sqlx::query("CREATE TABLE marker (id INTEGER)")
        .execute(&first)
        .await
        .expect("create a table in the first database");

    let second = PgPoolOptions::new()
        .connect(&second_url)
        .await
        .expect("connect to the second database");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&second)
    .await
    .expect("count the tables of the second database");
    assert_eq!(tables, 0, "a new database has no tables of its own");
}

#[tokio::test]
async fn postgres_server_runs_version_15_or_later() {
    let Some(server) = postgres() else { return };
    let pool = PgPoolOptions::new()
        .connect(&server.create_database())
        .await
        .expect("connect");
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&pool)
        .await
        .expect("read the server version");
    let version: u32 = version.parse().expect("a numeric version");
    assert!(version >= 150_000, "server_version_num is {version}");
}

#[tokio::test]
async fn s3_bucket_accepts_writes_with_the_env_credentials() {
    let Some(server) = s3() else { return };
    let bucket = server.create_bucket();
    let store = s3_store(&bucket, server.env());
    let path = ObjectPath::from("snapshots/one/manifest.json");

    store
        .put(&path, PutPayload::from_static(b"{\"count\": 1}"))
        .await
        .expect("put an object");
    let read = store
        .get(&path)
        .await
        .expect("get the object")
        .bytes()
        .await
        .expect("read the object");
    assert_eq!(read, Bytes::from_static(b"{\"count\": 1}"));

    let listed: Vec<_> = store
        .list(Some(&ObjectPath::from("snapshots")))
        .try_collect()
        .await
        .expect("list the bucket");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, path);

    store.delete(&path).await.expect("delete the object");
    let after_delete: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .expect("list the bucket");
    assert!(after_delete.is_empty());
}

#[tokio::test]
async fn s3_created_buckets_are_separate() {
    let Some(server) = s3() else { return };
    let first = server.create_bucket();
    let second = server.create_bucket();
    assert_ne!(first, second);

    s3_store(&first, server.env())
        .put(
            &ObjectPath::from("only-in-first"),
            PutPayload::from_static(b"x"),
        )
        .await
        .expect("put an object");
    let listed: Vec<_> = s3_store(&second, server.env())
        .list(None)
        .try_collect()
        .await
        .expect("list the second bucket");
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn s3_rejects_a_wrong_secret_key() {
    let Some(server) = s3() else { return };
    let bucket = server.create_bucket();
    let env = server
        .env()
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "AWS_SECRET_ACCESS_KEY" => (name, "not-the-secret".to_owned()),
            _ => (name, value),
        })
        .collect();

    let result = s3_store(&bucket, env)
        .put(&ObjectPath::from("denied"), PutPayload::from_static(b"x"))
        .await;
    assert!(
        result.is_err(),
        "a write signed with a wrong secret succeeded"
    );
}

#[test]
fn s3_env_names_the_endpoint_and_allows_http() {
    let Some(server) = s3() else { return };
    let env = server.env();
    let value = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(value("AWS_ENDPOINT_URL"), Some(server.endpoint()));
    assert_eq!(value("AWS_ALLOW_HTTP").as_deref(), Some("true"));
    assert!(value("AWS_REGION").is_some());
    assert!(value("AWS_ACCESS_KEY_ID").is_some());
    assert!(value("AWS_SECRET_ACCESS_KEY").is_some());
    assert!(server.endpoint().starts_with("http://127.0.0.1:"));
}

#[test]
fn python_tools_import_stix2_and_taxii2client() {
    let Some(tools) = python_tools() else { return };
    let import = Command::new(&tools.python)
        .args(["-c", "import stix2, taxii2client"])
        .output()
        .expect("run python");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
}

#[test]
fn stix2_validator_accepts_valid_and_rejects_invalid() {
    let Some(tools) = python_tools() else { return };
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let valid = dir.path().join("valid.json");
    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &valid,
        identity_bundle("identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"),
    )
    .expect("write the valid bundle");
    std::fs::write(&invalid, identity_bundle("identity--not-a-uuid"))
        .expect("write the invalid bundle");

    // Each run takes seconds to start, so both run at once.
    let validate = |path: &std::path::Path| {
        Command::new(&tools.stix2_validator)
            .arg("--strict")
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run stix2_validator")
    };
    let valid_run = validate(&valid);
    let invalid_run = validate(&invalid);
    let valid_output = valid_run
        .wait_with_output()
        .expect("wait for stix2_validator");
    let invalid_output = invalid_run
        .wait_with_output()
        .expect("wait for stix2_validator");

    assert!(
        valid_output.status.success(),
        "{}",
        String::from_utf8_lossy(&valid_output.stdout)
    );
    assert!(
        !invalid_output.status.success(),
        "an identity id without a UUID passed validation"
    );
}

#[test]
fn workspace_root_holds_the_workspace_manifest() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
        .expect("read the root Cargo.toml");
    assert!(manifest.contains("[workspace]"));
}

#[test]
fn shared_data_dir_holds_the_test_data() {
    let dir = shared_data_dir();
    assert!(dir.is_dir(), "{} is not a folder", dir.display());
    assert!(dir.join("README.md").is_file());
}

#[test]
fn servers_are_removed_after_their_process_is_killed() {
    let Some(mut held) = HeldServers::start() else {
        return;
    };
    held.child.kill().expect("send SIGKILL");
    held.child.wait().expect("reap the killed process");
    held.assert_removed();
}

#[test]
fn servers_are_removed_after_their_process_exits() {
    let Some(mut held) = HeldServers::start() else {
        return;
    };
    drop(held.child.stdin.take());
    let status = held.child.wait().expect("wait for the process");
    assert!(status.success(), "hold-test-servers exited with {status}");
    held.assert_removed();
}

#[test]
fn servers_are_removed_after_a_kill_during_startup() {
    let temp_dir = shared_temp_dir();
    let mut child = spawn_hold_test_servers(temp_dir.path());
    // initdb and the SeaweedFS startup each take longer than this, so the kill lands while
    // the servers are starting.
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("send SIGKILL");
    child.wait().expect("reap the killed process");
    assert_nothing_left_in(temp_dir.path());
}

/// Returns a STIX 2.1 bundle holding one identity with the id `identity_id`.
fn identity_bundle(identity_id: &str) -> String {
    format!(
        r#"{{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [{{"type": "identity", "spec_version": "2.1", "id": "{identity_id}", "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": "Partner Feed", "identity_class": "organization"}}]}}"#
    )
}

fn s3_store(bucket: &str, env: Vec<(String, String)>) -> impl ObjectStore {
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    for (name, value) in env {
        let key: AmazonS3ConfigKey = name
            .to_ascii_lowercase()
            .parse()
            .unwrap_or_else(|error| panic!("object_store does not know {name}: {error}"));
        builder = builder.with_config(key, value);
    }
    builder.build().expect("build the S3 client")
}

/// A `hold-test-servers` process and the servers it reported.
struct HeldServers {
    child: Child,
    servers: Vec<HeldServer>,
    /// The process's TMPDIR, which contains the folders of its servers.
    temp_dir: TempDir,
}

/// One server as `hold-test-servers` reported it.
struct HeldServer {
    kind: String,
    pid: u32,
    dir: PathBuf,
}

impl HeldServers {
    /// Starts `hold-test-servers` and reads its report, or returns `None` when it started no
    /// server because the tools are missing.
    fn start() -> Option<HeldServers> {
        let temp_dir = shared_temp_dir();
        let mut child = spawn_hold_test_servers(temp_dir.path());
        let stdout = child.stdout.take().expect("piped stdout");

        let mut servers = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the output of hold-test-servers");
            if line == "ready" {
                break;
            }
            if let Some(server) = HeldServer::parse(&line) {
                servers.push(server);
            }
        }
        assert!(
            child.try_wait().expect("check the process").is_none(),
            "hold-test-servers exited before it reported ready"
        );

        if servers.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        for server in &servers {
            assert!(
                process_is_running(server.pid),
                "{} is not running",
                server.kind
            );
            assert!(server.dir.is_dir(), "{} has no folder", server.kind);
            assert!(
                server.dir.starts_with(temp_dir.path()),
                "{} folder {} is outside TMPDIR",
                server.kind,
                server.dir.display()
            );
        }
        Some(HeldServers {
            child,
            servers,
            temp_dir,
        })
    }

    /// Waits until every server has stopped and its folder is gone.
    fn assert_removed(&self) {
        assert_nothing_left_in(self.temp_dir.path());
        for server in &self.servers {
            assert!(
                !process_is_running(server.pid),
                "{} (pid {}) still runs after its owner ended",
                server.kind,
                server.pid
            );
            assert!(
                !server.dir.exists(),
                "{} folder {} still exists after its owner ended",
                server.kind,
                server.dir.display()
            );
        }
    }
}

impl HeldServer {
    /// Parses `KIND pid=PID dir=FOLDER …`; returns `None` for other lines.
    fn parse(line: &str) -> Option<HeldServer> {
        let mut words = line.split(' ');
        let kind = words.next()?;
        if kind != "postgres" && kind != "s3" {
            return None;
        }
        let mut pid = None;
        let mut dir = None;
        for word in words {
            match word.split_once('=') {
                Some(("pid", value)) => pid = value.parse().ok(),
                Some(("dir", value)) => dir = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        Some(HeldServer {
            kind: kind.to_owned(),
            pid: pid?,
            dir: dir?,
        })
    }
}

/// Creates a temporary folder that the postgres account can traverse, to serve as TMPDIR.
fn shared_temp_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the temporary folder to other accounts");
    dir
}

fn spawn_hold_test_servers(temp_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hold-test-servers"))
        .env("TMPDIR", temp_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hold-test-servers")
}

/// Waits until `temp_dir` is empty and no process names it on its command line, and fails
/// with what is left otherwise.
fn assert_nothing_left_in(temp_dir: &Path) {
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    loop {
        let files = entries_of(temp_dir);
        let processes = processes_naming(temp_dir);
        if files.is_empty() && processes.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} seconds after the owner ended, {} still has {files:?} and these processes \
             name it: {processes:?}",
            CLEANUP_TIMEOUT.as_secs(),
            temp_dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn entries_of(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list the temporary folder")
        .map(|entry| entry.expect("read a folder entry").path())
        .collect()
}

/// Returns the command lines of the running processes whose command line contains `path`.
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Ok(command_line) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
        if command_line.contains(&needle) && process_is_running(pid) {
            found.push(command_line);
        }
    }
    found
}
