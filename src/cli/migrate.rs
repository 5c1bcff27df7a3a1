//! `partner-feed migrate`: applies the embedded database migrations and reports which ran.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use partner_feed_shared::config::Settings;
use partner_feed_shared::db::{redact_password, Database, Dialect};
use partner_feed_shared::on_pool;

/// Options of `partner-feed migrate` (none yet).
#[derive(Debug, Args)]
pub struct MigrateArgs {}

/// Applies pending migrations, then logs each one that ran and the schema version.
pub async fn run(settings: &Settings, _args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = &settings.database.url;
    let db = Database::connect(url)
        .await
        .with_context(|| format!("opening the database {}", redact_password(url)))?;

    let before = applied_migrations(&db).await?;
    db.migrate()
        .await
        .with_context(|| format!("migrating the database {}", redact_password(url)))?;
    let after = applied_migrations(&db).await?;

    let ran: Vec<&(i64, String)> = after.iter().filter(|m| !before.contains(m)).collect();
    for (version, description) in &ran {
        tracing::info!(version, description = %description, "migration applied");
    }
    let schema_version = after.last().map(|(version, _)| *version).unwrap_or(0);
    tracing::info!(
        applied = ran.len(),
        schema_version,
        database = %redact_password(url),
        "database is up to date"
    );
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Returns `(version, description)` of every applied migration; empty before the first run.
async fn applied_migrations(db: &Database) -> anyhow::Result<Vec<(i64, String)>> {
    let exists_sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')"
        }
        Dialect::Postgres => "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
    };
    let table_exists: bool =
        on_pool!(db, pool => sqlx::query_scalar(exists_sql).fetch_one(pool).await)
            .context("checking for the migrations table")?;
    if !table_exists {
        return Ok(Vec::new());
    }

    let sql = "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version";
    on_pool!(db, pool => sqlx::query_as(sql).fetch_all(pool).await)
        .context("reading the applied migrations")
}
