//! `partner-feed publish [--once]`: runs the publisher once, or on `publisher.schedule` until
//! SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use partner_feed_publisher::Publisher;
use partner_feed_shared::config::Settings;
use partner_feed_shared::storage::open_store;
use tokio_util::sync::CancellationToken;

use super::serve::cancel_on_shutdown_signal;

/// Options of `partner-feed publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Run one snapshot and exit: 0 when it published or found the source unchanged, 1 when it
    /// failed or another run holds the lock. Without it, runs on publisher.schedule.
    #[arg(long)]
    once: bool,
}

/// Runs one snapshot with `--once`, else the schedule until SIGTERM or Ctrl-C.
///
/// A signal during a run stops it at the next row and leaves `latest.json` unchanged. On the
/// schedule that is a clean stop and returns success; with `--once` the run did not finish, so
/// it is an error.
pub async fn run(settings: &Settings, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let db = super::open_database(settings).await?;
    let store = open_store(&settings.storage.url)
        .with_context(|| format!("opening object storage {}", settings.storage.url))?;
    let publisher = Publisher::new(settings, db.clone(), store).with_progress(true);

    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_shutdown_signal(cancel.clone()));
    let result = if args.once {
        publisher
            .publish_once(&cancel)
            .await
            .map(|_| ())
            .context("publishing a snapshot")
    } else {
        publisher
            .run_scheduled(cancel)
            .await
            .context("running the publisher schedule")
    };

    db.close().await;
    result.map(|()| ExitCode::SUCCESS)
}
