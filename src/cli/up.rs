//! `partner-feed up`: migrate, publish a first snapshot, then run the scheduler and the edge in one process.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use partner_feed_edge::Application;
use partner_feed_publisher::{error_chain, Publisher};
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::{Database, NewPartnerKey};
use partner_feed_shared::keys::RawKey;
use partner_feed_shared::storage::open_store;
use tokio_util::sync::CancellationToken;

use super::open_database;
use super::serve::cancel_on_shutdown_signal;
use crate::demo;

/// Rows per transaction when the demo set is written.
const DEMO_BATCH_SIZE: usize = 200;

/// Options of `partner-feed up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Fill an empty database with a generated demo indicator set and print a demo key.
    #[arg(long)]
    demo: bool,
}

/// Runs the whole product until SIGTERM or Ctrl-C, then stops both parts and returns success.
pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<ExitCode> {
    let db = open_database(settings).await?;
    let demo_key = if args.demo {
        seed_demo_indicators(&db).await?;
        Some(create_demo_key(&db).await?)
    } else {
        None
    };
    let store = open_store(&settings.storage.url)
        .with_context(|| format!("opening object storage {}", settings.storage.url))?;
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_shutdown_signal(cancel.clone()));

    let publisher = Publisher::new(settings, db.clone(), store.clone())
        .with_progress(std::io::stderr().is_terminal());
    if let Err(error) = publisher.publish_once(&cancel).await {
        tracing::error!(error = %error_chain(&error), "first snapshot failed; the scheduler retries at its next tick");
    }

    let application = Application::build(settings.clone(), db.clone(), store)
        .await
        .context("starting the edge")?;
    print_welcome(application.local_addr(), demo_key.as_ref());

    let scheduler = {
        let cancel = cancel.clone();
        async move {
            let outcome = publisher.run_scheduled(cancel.clone()).await;
            cancel.cancel();
            outcome.context("running the publisher's schedule")
        }
    };
    let edge = {
        let cancel = cancel.clone();
        async move {
            let outcome = application.run_until_stopped(cancel.clone()).await;
            cancel.cancel();
            outcome.context("running the edge")
        }
    };
    let (scheduled, served) = tokio::join!(scheduler, edge);
    db.close().await;
    scheduled?;
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn seed_demo_indicators(db: &Database) -> anyhow::Result<()> {
    let existing = db.count_indicators().await.context("counting indicators")?;
    if existing > 0 {
        tracing::info!(
            indicators = existing,
            "database already holds indicators; demo set not added"
        );
        return Ok(());
    }
    let indicators = demo::generate(Utc::now());
    for chunk in indicators.chunks(DEMO_BATCH_SIZE) {
        let mut batch = db.begin_indicator_batch().await?;
        batch.insert(chunk).await?;
        batch.commit().await?;
    }
    tracing::info!(indicators = indicators.len(), "demo indicator set added");
    Ok(())
}

async fn create_demo_key(db: &Database) -> anyhow::Result<RawKey> {
    let raw = RawKey::generate();
    let new_key = NewPartnerKey {
        partner_name: "demo".to_owned(),
        scopes: Vec::new(),
        rate_limit_per_minute: None,
        expires_at: None,
        created_by: Some("partner-feed up --demo".to_owned()),
    };
    let stored = db
        .insert_partner_key(&raw, &new_key)
        .await
        .context("creating the demo key")?;
    tracing::info!(key_id = %stored.key_id, key_prefix = %stored.key_prefix, "demo key created");
    Ok(raw)
}

fn print_welcome(address: std::net::SocketAddr, demo_key: Option<&RawKey>) {
    println!("Partner Feed is serving on http://{address} (Ctrl-C stops it)");
    if let Some(key) = demo_key {
        println!("Demo key (shown once): {}", key.expose());
        println!(
            "Try: curl -sS -H 'X-Partner-API-Key: {}' 'http://{address}/feeds/indicators?pageSize=5'",
            key.expose()
        );
    }
}
