//! Free ports, the cleanup watchdog, and process checks shared by the servers.

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Shell script of the watchdog.
///
/// It reads commands from standard input, one a line: `watch PID` and `forget PID` to add or
/// drop a process to stop, and `remove PATH` to add a file or folder to delete. Standard input
/// reaches end of file when the test process exits in any way, because the test process has
/// the only write end of that pipe (Rust opens pipes with close-on-exec, so no other child
/// inherits it). The script then sends `$1` to every watched process, waits up to 10 seconds
/// for them to end (a zombie counts as ended), sends SIGKILL to any still alive, and deletes
/// the paths.
const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT TERM
signal=$1
pids=
paths=
newline='
'
while IFS= read -r line; do
    case $line in
        "watch "*) pids="$pids ${line#watch }" ;;
        "forget "*) pids=$(printf '%s\n' $pids | grep -vx -- "${line#forget }" | tr '\n' ' ') ;;
        "remove "*) paths="$paths${line#remove }$newline" ;;
    esac
done
alive() {
    kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
for pid in $pids; do
    kill -s "$signal" "$pid" 2>/dev/null
done
tries=0
for pid in $pids; do
    while alive "$pid" && [ "$tries" -lt 100 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if alive "$pid"; then
        kill -s KILL "$pid" 2>/dev/null
    fi
done
printf '%s' "$paths" | while IFS= read -r path; do
    rm -rf -- "$path"
done
"#;

/// A process that stops a server and deletes its files once the test process has exited.
///
/// Dropping it does nothing: the servers live in statics, which Rust never drops, so the
/// watchdog acts on process exit only.
pub(crate) struct Watchdog {
    _process: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Starts a watchdog that will send `signal` (such as `QUIT`) to the watched processes.
    pub(crate) fn spawn(signal: &str) -> io::Result<Watchdog> {
        let mut process = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("testkit-watchdog")
            .arg(signal)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so a Ctrl-C meant for the tests does not stop the
            // watchdog before it has cleaned up.
            .process_group(0)
            .spawn()?;
        let pipe = process
            .stdin
            .take()
            .expect("the watchdog was spawned with a piped stdin");
        Ok(Watchdog {
            _process: process,
            pipe,
        })
    }

    /// Adds process `pid` to the processes to stop.
    pub(crate) fn watch(&mut self, pid: u32) -> io::Result<()> {
        writeln!(self.pipe, "watch {pid}")
    }

    /// Drops process `pid`, which has ended and been reaped, so that the watchdog does not
    /// signal an unrelated process that later gets the same id.
    pub(crate) fn forget(&mut self, pid: u32) -> io::Result<()> {
        writeln!(self.pipe, "forget {pid}")
    }

    /// Adds `path` to the files and folders to delete.
    pub(crate) fn remove(&mut self, path: &Path) -> io::Result<()> {
        let text = path.to_str().filter(|text| !text.contains('\n'));
        let Some(text) = text else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the watchdog cannot delete {path:?}: not UTF-8 or contains a newline"),
            ));
        };
        writeln!(self.pipe, "remove {text}")
    }
}

/// Reserves `count` distinct free TCP ports on 127.0.0.1.
///
/// The ports are free when this returns but not held: another process could take one before
/// the server binds it, so callers retry when a server reports an address in use.
pub(crate) fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// Returns true when process `pid` exists and is not a zombie.
pub fn process_is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|line| line.starts_with("State:") && line.contains('Z')),
        Err(_) => false,
    }
}

/// Returns true when this process runs as root.
pub(crate) fn running_as_root() -> io::Result<bool> {
    Ok(command_output(Command::new("id").arg("-u"))?.trim() == "0")
}

/// Returns the user and group ids of the account `name`, or `None` when it does not exist.
pub(crate) fn account_ids(name: &str) -> io::Result<Option<(u32, u32)>> {
    let (Ok(uid), Ok(gid)) = (
        command_output(Command::new("id").args(["-u", name])),
        command_output(Command::new("id").args(["-g", name])),
    ) else {
        return Ok(None);
    };
    let parse = |text: &str| {
        text.trim().parse::<u32>().map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("invalid id {text:?} for account {name}: {error}"),
            )
        })
    };
    Ok(Some((parse(&uid)?, parse(&gid)?)))
}

/// Runs `command` and returns its standard output, or an error carrying its standard error.
pub(crate) fn command_output(command: &mut Command) -> io::Result<String> {
    let output = command.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{command:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Returns the last `lines` lines of the text file at `path`, or a note that it is unreadable.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(log {} is unreadable: {error})", path.display()),
    }
}

/// Calls `check` every 100 ms until it returns `Some`, or returns `None` after `timeout`.
pub(crate) fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
