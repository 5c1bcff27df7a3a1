//! `partner-feed keys create|list|revoke`: a convenience over the `partner_api_keys` table.
//!
//! `keys create` prints the new key's fields on stdout, one `name: value` line each, in this
//! order: `key_id`, `partner`, `prefix`, `key`. The `key:` line contains the raw key; it is printed
//! this once and never stored or logged, so a script captures it with `sed -n 's/^key: //p'`.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::{Database, NewPartnerKey, PartnerKey};
use partner_feed_shared::import::parse_timestamp;
use partner_feed_shared::keys::{KeyScopes, RawKey};

use super::open_database;

/// Options of `partner-feed keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a key for a partner, store its SHA-256 hash, and print the raw key once.
    #[command(after_help = "Output on stdout, one line each:\n  \
        key_id: <uuid>\n  partner: <name>\n  prefix: <first 8 characters>\n  key: <raw key>\n\
        The raw key is shown only here; capture it with  sed -n 's/^key: //p'")]
    Create(CreateArgs),
    /// List every key with its limits and state (hashes are never shown).
    List,
    /// Deactivate a key (is_active = false), given its id or a unique start of its prefix.
    Revoke {
        /// Key id, or the first characters of the key's prefix.
        #[arg(value_name = "KEY_ID_OR_PREFIX")]
        key: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Partner the key belongs to.
    #[arg(long, value_name = "NAME")]
    partner: String,
    /// Requests per minute for this key; without it the configured
    /// partner_feed.rate_limit_per_minute applies.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    rate_limit: Option<u32>,
    /// Time after which the key is refused: RFC 3339, or a date meaning 00:00 UTC of that day.
    #[arg(long, value_name = "TIME", value_parser = parse_expiry)]
    expires: Option<DateTime<Utc>>,
    /// Scope entry, repeatable: tlp:<clear|green|amber|amber+strict> caps the TLP
    /// (default tlp:amber); category:<name> restricts the key to that category.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Name of the person or system creating the key, stored in created_by
    /// [default: the USER environment variable].
    #[arg(long, value_name = "NAME")]
    created_by: Option<String>,
}

fn parse_expiry(text: &str) -> Result<DateTime<Utc>, String> {
    parse_timestamp(text).map_err(|error| error.to_string())
}

/// Runs one `keys` subcommand.
pub async fn run(settings: &Settings, args: KeysArgs) -> anyhow::Result<ExitCode> {
    let db = open_database(settings).await?;
    let code = match args.command {
        KeysCommand::Create(create) => create_key(&db, create).await?,
        KeysCommand::List => list_keys(&db, settings).await?,
        KeysCommand::Revoke { key } => revoke_key(&db, settings, &key).await?,
    };
    db.close().await;
    Ok(code)
}

async fn create_key(db: &Database, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let partner_name = args.partner.trim().to_owned();
    if partner_name.is_empty() {
        anyhow::bail!("--partner must not be empty");
    }
    KeyScopes::parse(&args.scopes)?;
    if let Some(expires) = args.expires {
        if expires <= Utc::now() {
            anyhow::bail!(
                "--expires {} is in the past; give a later time",
                format_time(expires)
            );
        }
    }
    let created_by = args
        .created_by
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty());

    let raw = RawKey::generate();
    let new_key = NewPartnerKey {
        partner_name,
        scopes: args.scopes,
        rate_limit_per_minute: args.rate_limit.map(i64::from),
        expires_at: args.expires,
        created_by,
    };
    let key = db
        .insert_partner_key(&raw, &new_key)
        .await
        .context("storing the new key")?;
    tracing::info!(
        key_id = %key.key_id,
        partner = %key.partner_name,
        key_prefix = %key.key_prefix,
        "partner key created"
    );

    println!("key_id: {}", key.key_id);
    println!("partner: {}", key.partner_name);
    println!("prefix: {}", key.key_prefix);
    println!("key: {}", raw.expose());
    eprintln!(
        "Give the key to the partner now: only its hash is stored, so it cannot be shown again."
    );
    Ok(ExitCode::SUCCESS)
}

async fn list_keys(db: &Database, settings: &Settings) -> anyhow::Result<ExitCode> {
    let keys = db.list_partner_keys().await.context("listing keys")?;
    if keys.is_empty() {
        println!("no partner keys");
        return Ok(ExitCode::SUCCESS);
    }

    let now = Utc::now();
    let default_limit = settings.partner_feed.rate_limit_per_minute;
    let header = [
        "ID",
        "PARTNER",
        "PREFIX",
        "SCOPES",
        "LIMIT",
        "ACTIVE",
        "CREATED",
        "LAST USED",
        "EXPIRES",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 9]> = keys
        .iter()
        .map(|key| key_row(key, now, default_limit))
        .collect();
    print_table(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

fn key_row(key: &PartnerKey, now: DateTime<Utc>, default_limit: u32) -> [String; 9] {
    let scopes = if key.scopes.is_empty() {
        "-".to_owned()
    } else {
        key.scopes.join(",")
    };
    let limit = match key.rate_limit_per_minute {
        Some(limit) => format!("{limit}/min"),
        None => format!("default ({default_limit}/min)"),
    };
    let active = match (key.is_active, key.is_expired(now)) {
        (false, _) => "no",
        (true, true) => "expired",
        (true, false) => "yes",
    };
    [
        key.key_id.clone(),
        key.partner_name.clone(),
        key.key_prefix.clone(),
        scopes,
        limit,
        active.to_owned(),
        format_time(key.created_at),
        key.last_used_at
            .map(format_time)
            .unwrap_or_else(|| "-".into()),
        key.expires_at
            .map(format_time)
            .unwrap_or_else(|| "-".into()),
    ]
}

fn print_table(header: &[String; 9], rows: &[[String; 9]]) {
    let mut widths = header.clone().map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

async fn revoke_key(
    db: &Database,
    settings: &Settings,
    id_or_prefix: &str,
) -> anyhow::Result<ExitCode> {
    let id_or_prefix = id_or_prefix.trim();
    if id_or_prefix.is_empty() {
        anyhow::bail!("KEY_ID_OR_PREFIX must not be empty");
    }
    let matches = db
        .find_partner_keys_by_id_or_prefix(id_or_prefix)
        .await
        .context("looking up the key")?;

    let key = match matches.as_slice() {
        [] => {
            eprintln!("error: no partner key has the id or a prefix starting with {id_or_prefix:?}; `partner-feed keys list` shows them");
            return Ok(ExitCode::FAILURE);
        }
        [key] => key,
        candidates => {
            eprintln!(
                "error: {id_or_prefix:?} matches {} keys; nothing was revoked. Give the key id or a longer prefix:",
                candidates.len()
            );
            for candidate in candidates {
                eprintln!(
                    "  {}  {}  {}",
                    candidate.key_id, candidate.key_prefix, candidate.partner_name
                );
            }
            return Ok(ExitCode::FAILURE);
        }
    };

    if !key.is_active {
        println!(
            "key {} ({}, prefix {}) was already revoked",
            key.key_id, key.partner_name, key.key_prefix
        );
        return Ok(ExitCode::SUCCESS);
    }
    db.revoke_partner_key(&key.key_id)
        .await
        .context("revoking the key")?;
    tracing::info!(
        key_id = %key.key_id,
        partner = %key.partner_name,
        key_prefix = %key.key_prefix,
        "partner key revoked"
    );
    println!(
        "revoked key {} ({}, prefix {}); edge processes may accept it for up to {} more seconds while their key cache expires",
        key.key_id, key.partner_name, key.key_prefix, settings.partner_feed.key_cache_ttl_seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}
