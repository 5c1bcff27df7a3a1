//! The `partner-feed` command line: global options, subcommands and their dispatch.
//!
//! Each subcommand lives in its own module with an `Args` type and
//! `async fn run(settings: &Settings, args) -> anyhow::Result<ExitCode>`; adding one is a
//! variant of [`Command`] and an arm in [`run`].

mod import;
mod keys;
mod migrate;
mod publish;
mod serve;
mod up;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use partner_feed_shared::config::{ConfigSources, Settings};
use partner_feed_shared::db::{redact_password, Database};
use tracing_subscriber::EnvFilter;

/// Exit code for a configuration that cannot be read or is invalid.
const CONFIG_ERROR_EXIT: u8 = 2;

/// Partner indicator feed: publisher, edge service and admin commands.
#[derive(Debug, Parser)]
#[command(name = "partner-feed", version, about)]
pub struct Cli {
    /// Extra settings file, read after config/settings.default.toml and
    /// config/settings.local.toml and before I4G_* environment variables.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations (every other command applies them too).
    Migrate(migrate::MigrateArgs),
    /// Create, list and revoke partner API keys.
    Keys(keys::KeysArgs),
    /// Load or update indicators from a file (upsert on type and value).
    Import(import::ImportArgs),
    /// Publish a snapshot of the indicators to object storage, once (--once) or on publisher.schedule.
    Publish(publish::PublishArgs),
    /// Run the HTTP edge alone until SIGTERM or Ctrl-C.
    Serve(serve::ServeArgs),
    /// Migrate, publish a first snapshot, then run the publisher's schedule and the edge in one process.
    Up(up::UpArgs),
}

/// Parses the command line, loads the settings once, sets up logging and runs the command.
///
/// A configuration error is printed to stderr and gives exit code 2; the message names the
/// key and where its value came from.
pub async fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_tracing();

    let sources = ConfigSources {
        extra_file: cli.config.clone(),
        ..ConfigSources::default()
    };
    let settings = match Settings::load(&sources) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(CONFIG_ERROR_EXIT));
        }
    };

    match cli.command {
        Command::Migrate(args) => migrate::run(&settings, args).await,
        Command::Keys(args) => keys::run(&settings, args).await,
        Command::Import(args) => import::run(&settings, args).await,
        Command::Publish(args) => publish::run(&settings, args).await,
        Command::Serve(args) => serve::run(&settings, args).await,
        Command::Up(args) => up::run(&settings, args).await,
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as JSON when `LOG_FORMAT=json`.
///
/// Colors are used only when stderr is a terminal, so redirected logs stay plain text.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Connects to the configured database and applies any pending migrations.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let url = &settings.database.url;
    let db = Database::connect(url)
        .await
        .with_context(|| format!("opening the database {}", redact_password(url)))?;
    db.migrate()
        .await
        .with_context(|| format!("migrating the database {}", redact_password(url)))?;
    Ok(db)
}
