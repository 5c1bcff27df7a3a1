//! The partner feed's HTTP edge: authenticates keys, applies rate limits, audits every feed request and serves snapshot pages.
//!
//! [`Application::build`] binds the listener and loads the newest snapshot;
//! [`Application::run_until_stopped`] serves until its cancellation token fires, then finishes
//! the requests in flight and flushes the audit queue.

pub mod audit;
pub mod auth;
mod cache;
pub mod client_ip;
pub mod encoding;
pub mod error;
mod handlers;
pub mod index;
pub mod metrics;
pub mod query;
pub mod rate_limit;
mod routes;
pub mod snapshots;
mod startup;
mod state;

pub use error::{ApiError, EdgeError};
pub use startup::{Application, EdgeOptions, DEFAULT_AUDIT_SPOOL_DIR};
