//! The virtualenv holding the Python tools the tests call (stix2-validator, stix2).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::{workspace_root, Setup};

/// Label of these tests in skip lines and panics.
const KIND: &str = "Python tool";

/// Paths of the Python tools in the virtualenv.
pub struct PythonTools {
    /// The virtualenv's interpreter, which can import `stix2` and `taxii2client`.
    pub python: PathBuf,
    /// The `stix2_validator` command line tool.
    pub stix2_validator: PathBuf,
}

static TOOLS: OnceLock<Setup<PythonTools>> = OnceLock::new();

/// Returns the tools of the virtualenv named by `PARTNER_FEED_PYENV`, or by default
/// `<workspace>/target/pyenv` (which `scripts/test` creates).
///
/// Returns `None`, after printing one line `skipping Python tool tests: <why>`, when a tool is
/// missing and `CI` is not `true`.
///
/// # Panics
///
/// When a tool is missing and `CI=true`.
pub fn python_tools() -> Option<&'static PythonTools> {
    TOOLS.get_or_init(find_tools).get(KIND)
}

/// Returns the virtualenv folder: `PARTNER_FEED_PYENV`, or `<workspace>/target/pyenv`.
pub(crate) fn pyenv_dir() -> PathBuf {
    match std::env::var_os("PARTNER_FEED_PYENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("pyenv"),
    }
}

fn find_tools() -> Setup<PythonTools> {
    let bin = pyenv_dir().join("bin");
    let tools = PythonTools {
        python: bin.join("python"),
        stix2_validator: bin.join("stix2_validator"),
    };
    for tool in [&tools.python, &tools.stix2_validator] {
        if !tool.is_file() {
            return Setup::missing(
                KIND,
                format!(
                    "{} is missing: run scripts/test to create the virtualenv, or point \
                     PARTNER_FEED_PYENV at one",
                    tool.display()
                ),
            );
        }
    }
    Setup::Ready(tools)
}
