//! Building and running the edge: bind, load the latest snapshot, serve until cancelled, then drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use partner_feed_shared::config::Settings;
use partner_feed_shared::db::Database;

use crate::audit::{audit_queue, error_chain, AuditSpool, AuditWriter};
use crate::auth::{KeyCache, KeyUsage, KEY_USE_FLUSH_INTERVAL};
use crate::error::EdgeError;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::routes::routes;
use crate::snapshots::{RefreshOutcome, SnapshotCatalog};
use crate::state::AppState;

/// Maximum wait for the last `last_used_at` update at shutdown.
const KEY_USE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Default folder of the audit spool, relative to the working directory.
pub const DEFAULT_AUDIT_SPOOL_DIR: &str = "data/audit-spool";

/// Options of an edge process that are not part of the shared configuration.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Folder where audit records that could not reach the database at shutdown are kept
    /// until the next start. Replicas may share it: file names are unique and replays skip
    /// records already stored.
    pub audit_spool_dir: PathBuf,
    /// Time between two batched writes of the keys' `last_used_at`.
    pub key_use_flush_interval: Duration,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            audit_spool_dir: PathBuf::from(DEFAULT_AUDIT_SPOOL_DIR),
            key_use_flush_interval: KEY_USE_FLUSH_INTERVAL,
        }
    }
}

/// A bound, ready edge: call [`Application::run_until_stopped`] to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    audit_writer: AuditWriter,
    key_use_flush_interval: Duration,
}

impl Application {
    /// Binds `settings.edge.bind` and loads the latest snapshot, with the default options.
    pub async fn build(
        settings: Settings,
        db: Database,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Application, EdgeError> {
        Application::build_with_options(settings, db, store, EdgeOptions::default()).await
    }

    /// Binds `settings.edge.bind` (port 0 picks a free port) and loads the latest snapshot.
    ///
    /// A missing or unreadable snapshot does not stop the start: feed requests return 503 and
    /// `/readyz` reports not ready until the poller loads one.
    pub async fn build_with_options(
        settings: Settings,
        db: Database,
        store: Arc<dyn ObjectStore>,
        options: EdgeOptions,
    ) -> Result<Application, EdgeError> {
        let address = settings.edge.bind;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| EdgeError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EdgeError::Bind { address, source })?;

        let metrics = Metrics::new();
        let spool =
            AuditSpool::open(&options.audit_spool_dir, metrics.clone()).map_err(|source| {
                EdgeError::Spool {
                    path: options.audit_spool_dir.clone(),
                    source,
                }
            })?;
        let (audit, audit_writer) = audit_queue(db.clone(), spool, metrics.clone());
        let key_cache_ttl = Duration::from_secs(settings.partner_feed.key_cache_ttl_seconds);
        let state = Arc::new(AppState {
            catalog: SnapshotCatalog::new(store),
            keys: KeyCache::new(db.clone(), key_cache_ttl),
            key_usage: KeyUsage::default(),
            limiter: RateLimiter::new(),
            audit,
            metrics,
            settings,
            db,
        });
        refresh_snapshot(&state).await;
        Ok(Application {
            listener,
            local_addr,
            state,
            audit_writer,
            key_use_flush_interval: options.key_use_flush_interval,
        })
    }

    /// Returns the bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Returns the bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `cancel` fires; then stops accepting, finishes the requests in flight,
    /// writes the pending `last_used_at` updates and flushes the audit queue.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> Result<(), EdgeError> {
        let Application {
            listener,
            local_addr,
            state,
            audit_writer,
            key_use_flush_interval,
        } = self;
        let audit_closing = CancellationToken::new();
        let audit_task = tokio::spawn(audit_writer.run(audit_closing.clone()));
        let poller = tokio::spawn(poll_snapshots(Arc::clone(&state), cancel.clone()));
        let key_usage = tokio::spawn(flush_key_usage(
            Arc::clone(&state),
            key_use_flush_interval,
            cancel.clone(),
        ));

        tracing::info!(address = %local_addr, "edge listening");
        warp::serve(routes(Arc::clone(&state)))
            .incoming(listener)
            .graceful(cancel.clone().cancelled_owned())
            .run()
            .await;
        tracing::info!("edge stopped accepting requests and finished those in flight");

        cancel.cancel();
        poller.await.map_err(|source| EdgeError::Task {
            task: "snapshot poller",
            source,
        })?;
        key_usage.await.map_err(|source| EdgeError::Task {
            task: "key usage writer",
            source,
        })?;
        let final_flush = state.key_usage.flush(&state.db);
        if tokio::time::timeout(KEY_USE_SHUTDOWN_TIMEOUT, final_flush)
            .await
            .is_err()
        {
            tracing::warn!("timed out writing last_used_at of partner keys at shutdown");
        }
        audit_closing.cancel();
        audit_task.await.map_err(|source| EdgeError::Task {
            task: "audit writer",
            source,
        })?;
        tracing::info!("edge stopped");
        Ok(())
    }
}

async fn poll_snapshots(state: Arc<AppState>, cancel: CancellationToken) {
    let period = Duration::from_secs(state.settings.edge.snapshot_poll_seconds);
    run_periodically(period, cancel, || refresh_snapshot(&state)).await;
}

/// Runs `step` every `period` until `cancel` fires; a step still running then is dropped.
///
/// The first run comes one period after the start. An immediate first tick would, for
/// example, write the key uses of the first requests at once when the task first runs
/// after them.
async fn run_periodically<F, Step>(period: Duration, cancel: CancellationToken, mut step: F)
where
    F: FnMut() -> Step,
    Step: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = cancel.cancelled() => return,
        }
        tokio::select! {
            () = step() => {}
            () = cancel.cancelled() => return,
        }
    }
}

async fn refresh_snapshot(state: &AppState) {
    match state.catalog.refresh().await {
        Ok(RefreshOutcome::Swapped { previous, current }) => {
            state.metrics.set_snapshot(&current);
            let indicators = state
                .catalog
                .current()
                .map(|snapshot| snapshot.index.len())
                .unwrap_or(0);
            tracing::info!(
                snapshot_id = %current,
                previous_snapshot_id = previous.as_deref().unwrap_or("-"),
                indicators,
                "serving a new snapshot"
            );
        }
        Ok(RefreshOutcome::Unchanged) => {}
        Ok(RefreshOutcome::NoSnapshot) => {
            tracing::debug!("no snapshot published yet");
        }
        Err(error) => {
            state.metrics.snapshot_load_failures.inc();
            tracing::warn!(error = %error_chain(&error), "failed to load the latest snapshot; still serving the previous one");
        }
    }
}

async fn flush_key_usage(state: Arc<AppState>, period: Duration, cancel: CancellationToken) {
    // Limitation: a flush cut short by shutdown loses the uses it had taken, so their
    // last_used_at stays older. It is a usage hint, not an audit record.
    run_periodically(period, cancel, || state.key_usage.flush(&state.db)).await;
}
