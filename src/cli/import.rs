//! `partner-feed import FILE`: loads or updates indicators from a file.
//!
//! Each skipped row is printed on stderr as `FILE:LINE: reason`. The counts go to stdout as one
//! line, `inserted N, updated N, unchanged N, rejected N`. The exit code is 0 when every row
//! loaded and 1 when any row was rejected or the import stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use partner_feed_shared::config::Settings;
use partner_feed_shared::import::{import_file, ImportFormat};

use super::open_database;

/// Options of `partner-feed import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File to load; a .gz file (or any gzip content) is decompressed while it is read.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Layout of the file.
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// The feed's own CSV (header id,type,value,category,risk_score,…,status).
    Csv,
    /// One feed JSON record (camelCase fields) per line.
    Ndjson,
    /// STIX 2.1 bundles (not supported yet).
    Stix,
    /// abuse.ch URLhaus CSV dump, with or without its '#' comment lines.
    Urlhaus,
}

/// Imports the file and prints the counts.
pub async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        FormatArg::Csv => ImportFormat::Csv,
        FormatArg::Ndjson => ImportFormat::Ndjson,
        FormatArg::Urlhaus => ImportFormat::Urlhaus,
        FormatArg::Stix => anyhow::bail!(
            "importing STIX bundles is not supported yet; use --format csv, ndjson or urlhaus"
        ),
    };
    let db = open_database(settings).await?;

    let started = Instant::now();
    let shown_path = args.file.display().to_string();
    let print_rejection = |rejection: &partner_feed_shared::import::Rejection| {
        eprintln!("{shown_path}:{}: {}", rejection.line, rejection.reason);
    };
    let counts = import_file(&db, &args.file, format, print_rejection)
        .await
        .with_context(|| format!("importing {shown_path}"))?;
    db.close().await;

    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        file = %shown_path,
        format = %format,
        inserted = counts.inserted,
        updated = counts.updated,
        unchanged = counts.unchanged,
        rejected = counts.rejected,
        seconds,
        "import finished"
    );
    println!(
        "inserted {}, updated {}, unchanged {}, rejected {}",
        counts.inserted, counts.updated, counts.unchanged, counts.rejected
    );
    if counts.rejected > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
