//! `partner-feed up --demo`, the README's run command: it serves a demo feed that the
//! printed curl line fetches, and SIGTERM stops it with exit 0 and the audit written.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use partner_feed_shared::db::Database;
use partner_feed_shared::on_pool;
use serde_json::Value;

/// Maximum wait for the demo set, the first snapshot and the edge to come up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Maximum wait for a graceful stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn spawn_up(dir: &std::path::Path) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_partner-feed"));
    for (name, _) in std::env::vars() {
        if name.starts_with("I4G_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .args(["up", "--demo"])
        .current_dir(dir)
        .env("I4G_EDGE__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start partner-feed up --demo")
}

/// Reads standard output on a thread and returns the `Try: curl …` line once printed.
fn printed_curl_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut printed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                if let Some(curl) = line.strip_prefix("Try: ") {
                    return curl.to_owned();
                }
                printed.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no curl line printed within {START_TIMEOUT:?}; stdout: {printed:?}");
            }
        }
    }
}

fn stop_with_sigterm(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM failed");
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("partner-feed up did not stop within {STOP_TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn up_demo_serves_the_printed_curl_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_up(dir.path());
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let curl_line = printed_curl_line(&mut child);
    assert!(curl_line.starts_with("curl "), "{curl_line}");
    let fetched = Command::new("bash")
        .args(["-c", &curl_line])
        .output()
        .expect("run the printed curl line");
    let status = stop_with_sigterm(&mut child);
    let logs = stderr_reader.join().unwrap();

    assert!(
        fetched.status.success(),
        "the curl line failed: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let page: Value = serde_json::from_slice(&fetched.stdout).expect("the page is JSON");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(5), "{page}");
    let total = page["pagination"]["totalItems"].as_u64().unwrap();
    assert!(total > 1_000, "the demo feed holds {total} indicators");
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{logs}"
    );

    let key = curl_line
        .split("X-Partner-API-Key: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the curl line carries the key");
    assert_eq!(key.len(), 43);
    assert!(!logs.contains(key), "the raw demo key was logged");

    let db_path = dir.path().join("data/partner-feed.db");
    assert!(db_path.is_file(), "the database is under data/");
    let db = Database::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    let audited: Vec<(String, i64)> = on_pool!(&db, pool => sqlx::query_as(
        "SELECT endpoint, response_code FROM partner_feed_audit"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    assert_eq!(audited.len(), 1, "one audit row per request: {audited:?}");
    assert_eq!(audited[0].1, 200);
    db.close().await;
}
