//! State shared by every request handler and background task of one edge process.

use partner_feed_shared::config::Settings;
use partner_feed_shared::db::Database;

use crate::audit::AuditSink;
use crate::auth::{KeyCache, KeyUsage};
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::snapshots::SnapshotCatalog;

/// Everything a handler needs; shared behind one `Arc`.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    pub(crate) db: Database,
    pub(crate) catalog: SnapshotCatalog,
    pub(crate) keys: KeyCache,
    pub(crate) key_usage: KeyUsage,
    pub(crate) limiter: RateLimiter,
    pub(crate) audit: AuditSink,
    pub(crate) metrics: Metrics,
}
