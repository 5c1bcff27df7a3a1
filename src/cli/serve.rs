//! `partner-feed serve`: runs the HTTP edge alone until SIGTERM or Ctrl-C, then stops gracefully.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use partner_feed_edge::{Application, EdgeOptions, DEFAULT_AUDIT_SPOOL_DIR};
use partner_feed_shared::config::Settings;
use partner_feed_shared::storage::open_store;
use tokio_util::sync::CancellationToken;

/// Options of `partner-feed serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder for audit records that could not be written to the database at shutdown;
    /// they are written on the next start.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_AUDIT_SPOOL_DIR)]
    audit_spool_dir: PathBuf,
}

/// Serves the feed on `edge.bind` until SIGTERM or Ctrl-C, then finishes the requests in
/// flight, flushes the audit queue and returns success.
pub async fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let db = super::open_database(settings).await?;
    let store = open_store(&settings.storage.url)
        .with_context(|| format!("opening object storage {}", settings.storage.url))?;
    let options = EdgeOptions {
        audit_spool_dir: args.audit_spool_dir,
        ..EdgeOptions::default()
    };
    let application = Application::build_with_options(settings.clone(), db.clone(), store, options)
        .await
        .context("starting the edge")?;
    tracing::info!(
        address = %application.local_addr(),
        feed_enabled = settings.partner_feed.enabled,
        "partner feed edge started"
    );

    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_shutdown_signal(cancel.clone()));
    application
        .run_until_stopped(cancel)
        .await
        .context("running the edge")?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `cancel` on SIGTERM or Ctrl-C (SIGINT).
pub async fn cancel_on_shutdown_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(error = %error, "failed to listen for SIGTERM; only Ctrl-C stops the edge");
            let _ = ctrl_c.await;
            cancel.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        () = cancel.cancelled() => return,
    }
    cancel.cancel();
}
