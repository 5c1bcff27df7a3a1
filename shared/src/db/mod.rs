//! Database access on SQLite or PostgreSQL through one pool type and one set of queries.

mod audit;
mod indicators;
mod keys;
mod lock;
mod snapshots;
mod source;

#[allow(unused_imports)]
pub use audit::*;
pub use indicators::*;
pub use keys::*;
pub use lock::*;
pub use snapshots::*;
pub use source::*;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Error of a database operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Connecting to the database failed.
    #[error("failed to connect to the database at {url}")]
    Connect {
        /// The database URL with any password removed.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("failed to apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed while {action}")]
    Query {
        /// What was being done, such as "reading partner key abcdefgh".
        action: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value could not be read back into a domain type.
    #[error("invalid value in column {column}: {reason}")]
    Decode {
        /// Table and column, such as `indicators.tlp`.
        column: String,
        /// Why the value is invalid.
        reason: String,
    },
    /// Creating the folder of the SQLite file failed.
    #[error("failed to create the database folder {path}")]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Extension to attach an action description to sqlx errors.
pub(crate) trait QueryContext<T> {
    fn action(self, action: impl FnOnce() -> String) -> Result<T, DbError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn action(self, action: impl FnOnce() -> String) -> Result<T, DbError> {
        self.map_err(|source| DbError::Query {
            action: action(),
            source,
        })
    }
}

/// Database dialect in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Numbered bind placeholders in the dialect's syntax, counted across one statement.
///
/// SQLite gets anonymous `?` placeholders, bound in order. With numbered ones (`$1` or `?1`) the
/// driver looks up each parameter's name, and SQLite finds a name by a linear scan, so binding
/// thousands of them takes most of a second per statement.
pub(crate) struct Placeholders {
    dialect: Dialect,
    count: usize,
}

impl Placeholders {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self { dialect, count: 0 }
    }

    /// Returns the next placeholder: `?` on SQLite, `$n` on PostgreSQL.
    pub(crate) fn next(&mut self) -> String {
        self.count += 1;
        match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.count),
        }
    }

    /// Returns `rows` tuples of `width` placeholders, such as `($1, $2), ($3, $4)`.
    pub(crate) fn tuples(&mut self, rows: usize, width: usize) -> String {
        let tuple = |placeholders: &mut Self| {
            let columns: Vec<String> = (0..width).map(|_| placeholders.next()).collect();
            format!("({})", columns.join(", "))
        };
        let all: Vec<String> = (0..rows).map(|_| tuple(self)).collect();
        all.join(", ")
    }
}

/// A connection pool to either supported database.
///
/// Queries are written once and run on both pools through [`on_pool!`](crate::on_pool);
/// SQL text uses `$1`-style parameters, which both SQLite and PostgreSQL accept.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite pool (WAL journal, busy timeout).
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// Runs the same expression with `$pool` bound to whichever pool `$db` holds.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}

impl Database {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating the SQLite file and its folder when missing.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(|source| DbError::Connect {
                    url: redact_password(url),
                    source,
                })?;
            return Ok(Database::Postgres(pool));
        }
        let options = sqlite_options(url)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Database::Sqlite(pool))
    }

    /// Applies the embedded migrations of this dialect.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Database::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .map_err(DbError::Migrate)
    }

    /// Returns the dialect of this pool.
    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(_) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
            .action(|| "checking the database connection".to_owned())
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Returns the number of rows in `indicators`, TLP:RED and revoked ones included.
    pub async fn count_indicators(&self) -> Result<u64, DbError> {
        let count: i64 = on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM indicators").fetch_one(pool).await)
            .action(|| "counting indicators".to_owned())?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, DbError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|source| DbError::Connect {
        url: url.to_owned(),
        source,
    })?;
    let file = options.get_filename().to_owned();
    if let Some(folder) = file
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        create_folder(folder)?;
    }
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true))
}

fn create_folder(folder: &Path) -> Result<(), DbError> {
    std::fs::create_dir_all(folder).map_err(|source| DbError::CreateFolder {
        path: folder.to_owned(),
        source,
    })
}

/// Returns `url` with the password, if any, replaced by `***`, for messages and logs.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
