//! Throwaway PostgreSQL, SeaweedFS S3 and Python tools for the workspace's tests.
//!
//! Each server starts once per test process, on first use, listens only on 127.0.0.1 on free
//! ports, and keeps its files in its own temporary folder. A watchdog process stops the server
//! and removes that folder as soon as the test process exits, however it exits: a normal end, a
//! panic, or SIGKILL.
//!
//! When a tool is not installed, its accessor prints one `skipping … tests: <why>` line and
//! returns `None`, so a developer without it can still run the other tests. With `CI=true` the
//! accessor panics instead, so a CI run never passes by skipping.

mod postgres;
mod process;
mod python;
mod s3;
mod sigv4;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use postgres::{postgres, PostgresServer};
pub use process::process_is_running;
pub use python::{python_tools, PythonTools};
pub use s3::{s3, S3Server};

/// Returns the root folder of the Cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate lives one folder below the workspace root")
        .to_owned()
}

/// Returns the folder of shared test data, `../shared/data` relative to the workspace root.
pub fn shared_data_dir() -> PathBuf {
    let root = workspace_root();
    match root.parent() {
        Some(parent) => parent.join("shared").join("data"),
        None => root.join("..").join("shared").join("data"),
    }
}

/// Result of setting up one tool, computed once per process.
enum Setup<T> {
    /// The tool is running or usable.
    Ready(T),
    /// The tool is not installed. The text names the missing program or folder.
    Missing(String),
    /// The tool is installed but failed to start. The text is the cause.
    Failed(String),
}

impl<T> Setup<T> {
    /// Builds the setup of a missing tool and prints the skip line unless CI must have it.
    fn missing(kind: &str, reason: String) -> Setup<T> {
        if !running_in_ci() {
            // Written to the real stderr: the test harness captures `eprintln!` output of
            // passing tests, and this line must stay visible.
            let _ = writeln!(std::io::stderr(), "skipping {kind} tests: {reason}");
        }
        Setup::Missing(reason)
    }

    /// Returns the ready value, `None` for a missing tool outside CI, or panics.
    fn get(&'static self, kind: &str) -> Option<&'static T> {
        match self {
            Setup::Ready(value) => Some(value),
            Setup::Missing(reason) if running_in_ci() => {
                panic!("{kind} tests cannot run and CI=true forbids skipping them: {reason}")
            }
            Setup::Missing(_) => None,
            Setup::Failed(reason) => panic!("{reason}"),
        }
    }
}

/// Returns true when the `CI` environment variable is `true`.
fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}
