//! A throwaway PostgreSQL cluster per test process.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{
    account_ids, command_output, free_ports, log_tail, poll, running_as_root, Watchdog,
};
use crate::Setup;

/// Label of these tests in skip lines and panics.
const KIND: &str = "PostgreSQL";

/// Name of the cluster's superuser, which every database URL connects as.
const SUPERUSER: &str = "postgres";

/// Time allowed for the server to accept connections after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts at starting the server when the free port was taken in the meantime.
const START_ATTEMPTS: usize = 3;

/// A PostgreSQL cluster on 127.0.0.1 that lives as long as the test process.
///
/// It accepts the superuser `postgres` without a password from the loopback address only.
/// Durability settings are off (`fsync`, `synchronous_commit`, `full_page_writes`), so a crash
/// of the machine loses its data, which tests do not need.
pub struct PostgresServer {
    bin_dir: PathBuf,
    dir: PathBuf,
    port: u16,
    pid: u32,
    next_database: AtomicU32,
    _watchdog: Watchdog,
}

static SERVER: OnceLock<Setup<PostgresServer>> = OnceLock::new();

/// Returns the process-wide cluster, starting it on first use.
///
/// Returns `None`, after printing one line `skipping PostgreSQL tests: <why>`, when the
/// PostgreSQL server binaries are not installed and `CI` is not `true`.
///
/// # Panics
///
/// When the binaries are missing and `CI=true`, or when the cluster fails to start.
pub fn postgres() -> Option<&'static PostgresServer> {
    SERVER.get_or_init(PostgresServer::setup).get(KIND)
}

impl PostgresServer {
    /// Creates a fresh empty database and returns its URL, `postgres://postgres@127.0.0.1:PORT/NAME`.
    ///
    /// Blocks while `createdb` runs, which is fine inside `#[tokio::test]`.
    ///
    /// # Panics
    ///
    /// When `createdb` fails.
    pub fn create_database(&self) -> String {
        let number = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{number}");
        let result = command_output(
            Command::new(self.bin_dir.join("createdb"))
                .args(["--host", "127.0.0.1", "--username", SUPERUSER])
                .args(["--port", &self.port.to_string()])
                .arg(&name),
        );
        if let Err(error) = result {
            panic!("failed to create database {name}: {error}");
        }
        self.url(&name)
    }

    /// Returns the URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Returns the TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the process id of the postmaster.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns the temporary folder holding the data directory, socket and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn setup() -> Setup<PostgresServer> {
        let bin_dir = match find_bin_dir() {
            Some(dir) => dir,
            None => {
                return Setup::missing(
                    KIND,
                    "no PostgreSQL server binaries (initdb, postgres) found through \
                     `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: install the \
                     postgresql-15 package or run scripts/test"
                        .to_owned(),
                )
            }
        };
        match PostgresServer::start(bin_dir) {
            Ok(server) => Setup::Ready(server),
            Err(reason) => Setup::Failed(format!("failed to start PostgreSQL: {reason}")),
        }
    }

    fn start(bin_dir: PathBuf) -> Result<PostgresServer, String> {
        let owner = server_account()?;
        // SIGQUIT is PostgreSQL's immediate shutdown: the data is thrown away anyway.
        let mut watchdog = Watchdog::spawn("QUIT")
            .map_err(|error| format!("failed to start the cleanup watchdog: {error}"))?;
        let dir = tempfile::Builder::new()
            .prefix("partner-feed-postgres-")
            .tempdir()
            .map_err(|error| format!("failed to create a temporary folder: {error}"))?
            .keep();
        let result = PostgresServer::start_in(&bin_dir, &dir, owner, &mut watchdog);
        match result {
            Ok((port, pid)) => Ok(PostgresServer {
                bin_dir,
                dir,
                port,
                pid,
                next_database: AtomicU32::new(1),
                _watchdog: watchdog,
            }),
            Err(error) => {
                remove_folder(&dir);
                Err(error)
            }
        }
    }

    /// Creates the cluster in `dir` and starts it; returns its port and postmaster id.
    fn start_in(
        bin_dir: &Path,
        dir: &Path,
        owner: Option<(u32, u32)>,
        watchdog: &mut Watchdog,
    ) -> Result<(u16, u32), String> {
        watchdog.remove(dir).map_err(watchdog_error)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|error| {
                format!(
                    "failed to change the owner of {} to the postgres account: {error}",
                    dir.display()
                )
            })?;
        }

        init_cluster(bin_dir, dir, owner, watchdog)?;

        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match start_server(bin_dir, dir, owner, watchdog)? {
                Started::Running { port, pid } => return Ok((port, pid)),
                Started::PortTaken(error) => last_error = error,
            }
        }
        Err(format!(
            "the free port was taken {START_ATTEMPTS} times in a row; last error: {last_error}"
        ))
    }
}

/// Outcome of one attempt at starting the server.
enum Started {
    Running {
        port: u16,
        pid: u32,
    },
    /// Another process bound the chosen port first. The text is the server's log.
    PortTaken(String),
}

/// Returns the ids to run the server under: the `postgres` account when running as root,
/// because PostgreSQL refuses to run as root, and `None` (the current user) otherwise.
fn server_account() -> Result<Option<(u32, u32)>, String> {
    let root = running_as_root().map_err(|error| format!("failed to run `id -u`: {error}"))?;
    if !root {
        return Ok(None);
    }
    match account_ids(SUPERUSER) {
        Ok(Some(ids)) => Ok(Some(ids)),
        Ok(None) => Err(
            "the tests run as root, PostgreSQL refuses to run as root, and there is no \
             `postgres` account to run it as: create one (`useradd postgres`) or run the \
             tests as an ordinary user"
                .to_owned(),
        ),
        Err(error) => Err(format!("failed to look up the postgres account: {error}")),
    }
}

/// Runs `initdb` into `<dir>/data` with trust authentication and the C locale.
fn init_cluster(
    bin_dir: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
    watchdog: &mut Watchdog,
) -> Result<(), String> {
    let log_path = dir.join("initdb.log");
    let log = File::create(&log_path)
        .map_err(|error| format!("failed to create {}: {error}", log_path.display()))?;
    let mut command = Command::new(bin_dir.join("initdb"));
    command
        .arg("--pgdata")
        .arg(dir.join("data"))
        .args(["--username", SUPERUSER, "--auth", "trust"])
        .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|error| error.to_string())?)
        .stderr(log);
    as_account(&mut command, owner);
    let mut child = command.spawn().map_err(|error| {
        format!(
            "failed to run {}: {error}",
            bin_dir.join("initdb").display()
        )
    })?;

    // Watched too, so that a test process killed during initdb leaves no folder behind.
    let watched = watchdog.watch(child.id());
    let status = child.wait();
    watched.map_err(watchdog_error)?;
    let status = status.map_err(|error| format!("failed to wait for initdb: {error}"))?;
    watchdog.forget(child.id()).map_err(watchdog_error)?;

    if !status.success() {
        return Err(format!(
            "initdb failed with {status}:\n{}",
            log_tail(&log_path, 20)
        ));
    }
    Ok(())
}

/// Starts the postmaster on a free port and waits until it accepts connections.
fn start_server(
    bin_dir: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
    watchdog: &mut Watchdog,
) -> Result<Started, String> {
    let port = free_ports(1).map_err(|error| format!("failed to find a free port: {error}"))?[0];
    let log_path = dir.join("postgres.log");
    let log = File::create(&log_path)
        .map_err(|error| format!("failed to create {}: {error}", log_path.display()))?;

    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", &format!("port={port}")])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        // Every test opens its own pool of up to 16 connections, and tests run in parallel.
        .args(["-c", "max_connections=300"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|error| error.to_string())?)
        .stderr(log)
        .process_group(0);
    as_account(&mut command, owner);
    let mut child = command.spawn().map_err(|error| {
        format!(
            "failed to run {}: {error}",
            bin_dir.join("postgres").display()
        )
    })?;
    let pid = child.id();
    if let Err(error) = watchdog.watch(pid) {
        let _ = child.kill();
        return Err(watchdog_error(error));
    }

    let ready = poll(STARTUP_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(status));
        }
        accepts_connections(bin_dir, port).then_some(Ok(()))
    });
    // The child is never reaped while it runs: its id stays reserved until the test process
    // exits, so the watchdog cannot signal an unrelated process by mistake.
    match ready {
        Some(Ok(())) => Ok(Started::Running { port, pid }),
        Some(Err(status)) => {
            watchdog.forget(pid).map_err(watchdog_error)?;
            let log = log_tail(&log_path, 20);
            if log.contains("already in use") {
                Ok(Started::PortTaken(log))
            } else {
                Err(format!("postgres exited with {status}:\n{log}"))
            }
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            watchdog.forget(pid).map_err(watchdog_error)?;
            Err(format!(
                "postgres did not accept connections within {} seconds:\n{}",
                STARTUP_TIMEOUT.as_secs(),
                log_tail(&log_path, 20)
            ))
        }
    }
}

fn watchdog_error(error: std::io::Error) -> String {
    format!("failed to pass a command to the cleanup watchdog: {error}")
}

/// Returns true when `pg_isready` reports that the server accepts connections.
fn accepts_connections(bin_dir: &Path, port: u16) -> bool {
    Command::new(bin_dir.join("pg_isready"))
        .args(["--quiet", "--host", "127.0.0.1", "--username", SUPERUSER])
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Makes `command` run under `owner`'s user and group ids, when given.
fn as_account(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

fn remove_folder(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Finds the folder holding `initdb`, `postgres`, `pg_isready` and `createdb`.
///
/// Looks at `pg_config --bindir`, then the newest `/usr/lib/postgresql/<version>/bin` (Debian's
/// layout), then the folder of `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let from_pg_config = command_output(Command::new("pg_config").arg("--bindir"))
        .ok()
        .map(|text| PathBuf::from(text.trim()));
    let from_debian = newest_debian_bin_dir();
    let from_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|initdb| initdb.is_file())
            .and_then(|initdb| std::fs::canonicalize(initdb).ok())
            .and_then(|initdb| initdb.parent().map(Path::to_owned))
    });
    [from_pg_config, from_debian, from_path]
        .into_iter()
        .flatten()
        .find(|dir| has_server_binaries(dir))
}

fn newest_debian_bin_dir() -> Option<PathBuf> {
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server_binaries(dir))
        .max_by_key(|(version, _)| *version)
        .map(|(_, dir)| dir)
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_isready", "createdb"]
        .iter()
        .all(|name| dir.join(name).is_file())
}
