//! The lock that lets only one publisher run write snapshots at a time.
//!
//! On PostgreSQL it is a session-level advisory lock held on a connection taken out of the pool
//! for the run. On SQLite it is an exclusive OS file lock (`flock` on Unix) on a file beside the
//! database file. Both end with the process that holds them, so a killed run never blocks the
//! next one.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use fs4::fs_std::FileExt;
use sqlx::{Connection, PgConnection};

use super::{Database, DbError, QueryContext};

/// Key of the PostgreSQL advisory lock: the ASCII bytes of `pf-publi` read as a big-endian integer.
pub const PUBLISHER_ADVISORY_LOCK_KEY: i64 = 0x7066_2d70_7562_6c69;

/// Suffix added to the SQLite database file name to name its lock file.
pub const LOCK_FILE_SUFFIX: &str = ".publisher.lock";

/// Error returned when the publisher lock cannot be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another run holds the lock.
    #[error("another publisher run holds the lock ({lock}); wait for it to finish and try again")]
    Held {
        /// The lock, such as the lock file path or the advisory lock key.
        lock: String,
    },
    /// The database connection used for the lock failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The SQLite lock file could not be opened or locked.
    #[error("failed to lock the file {path}")]
    File {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The held publisher lock; dropping it releases the lock.
#[derive(Debug)]
pub struct PublisherLock {
    holder: LockHolder,
}

#[derive(Debug)]
enum LockHolder {
    Postgres(PgConnection),
    File {
        file: File,
        path: PathBuf,
    },
    /// The entry is only held so that dropping it releases the lock.
    InMemory {
        _entry: InMemoryLock,
    },
}

/// Entry of the process-wide set of locked in-memory databases, removed on drop.
#[derive(Debug)]
struct InMemoryLock(String);

impl PublisherLock {
    /// Takes the lock without waiting, or returns [`LockError::Held`] when another run has it.
    pub async fn try_acquire(db: &Database) -> Result<PublisherLock, LockError> {
        let holder = match db {
            Database::Postgres(pool) => {
                let connection = pool
                    .acquire()
                    .await
                    .action(|| "opening the connection for the publisher lock".to_owned())?
                    .detach();
                lock_postgres(connection).await?
            }
            Database::Sqlite(pool) => {
                let options = pool.connect_options();
                lock_sqlite_file(options.get_filename())?
            }
        };
        Ok(PublisherLock { holder })
    }

    /// Checks that the lock is still held, before a step that only the holder may take.
    ///
    /// A PostgreSQL advisory lock is lost when its connection breaks, so this pings that
    /// connection. A file lock cannot be lost while the file stays open.
    pub async fn ensure_held(&mut self) -> Result<(), LockError> {
        if let LockHolder::Postgres(connection) = &mut self.holder {
            connection
                .ping()
                .await
                .action(|| "checking the connection holding the publisher lock".to_owned())?;
        }
        Ok(())
    }

    /// Releases the lock. Dropping the lock releases it too, without reporting errors.
    pub async fn release(self) -> Result<(), LockError> {
        match self.holder {
            LockHolder::Postgres(mut connection) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PUBLISHER_ADVISORY_LOCK_KEY)
                    .execute(&mut connection)
                    .await
                    .action(|| "releasing the publisher lock".to_owned())?;
                connection
                    .close()
                    .await
                    .action(|| "closing the connection of the publisher lock".to_owned())?;
            }
            LockHolder::File { file, path } => {
                FileExt::unlock(&file).map_err(|source| LockError::File { path, source })?;
            }
            LockHolder::InMemory { .. } => {}
        }
        Ok(())
    }
}

impl Drop for InMemoryLock {
    fn drop(&mut self) {
        in_memory_locks()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.0);
    }
}

async fn lock_postgres(mut connection: PgConnection) -> Result<LockHolder, LockError> {
    let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PUBLISHER_ADVISORY_LOCK_KEY)
        .fetch_one(&mut connection)
        .await
        .action(|| "taking the publisher lock".to_owned())?;
    if acquired {
        return Ok(LockHolder::Postgres(connection));
    }
    // Closing only returns the connection's resources; a failure changes nothing for the caller.
    let _ = connection.close().await;
    Err(LockError::Held {
        lock: format!("PostgreSQL advisory lock {PUBLISHER_ADVISORY_LOCK_KEY}"),
    })
}

fn lock_sqlite_file(database_file: &Path) -> Result<LockHolder, LockError> {
    let name = database_file.to_string_lossy().into_owned();
    if is_in_memory(&name) {
        return lock_in_memory(name);
    }

    let mut lock_name = database_file.as_os_str().to_owned();
    lock_name.push(LOCK_FILE_SUFFIX);
    let path = PathBuf::from(lock_name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::File {
            path: path.clone(),
            source,
        })?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(LockHolder::File { file, path }),
        Ok(false) => Err(LockError::Held {
            lock: format!("lock file {}", path.display()),
        }),
        Err(source) => Err(LockError::File { path, source }),
    }
}

/// sqlx names the file of `sqlite::memory:` databases `file:sqlx-in-memory-<n>`.
fn is_in_memory(name: &str) -> bool {
    name == ":memory:" || name.starts_with("file:sqlx-in-memory-")
}

/// Takes the lock of an in-memory database in a process-wide set, which is enough because such a
/// database is visible to this process only.
fn lock_in_memory(name: String) -> Result<LockHolder, LockError> {
    let mut held = in_memory_locks()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !held.insert(name.clone()) {
        return Err(LockError::Held {
            lock: format!("in-memory database {name}"),
        });
    }
    Ok(LockHolder::InMemory {
        _entry: InMemoryLock(name),
    })
}

fn in_memory_locks() -> &'static Mutex<HashSet<String>> {
    static LOCKS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashSet::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_database(folder: &Path) -> Database {
        let url = format!("sqlite://{}", folder.join("feed.db").display());
        Database::connect(&url).await.unwrap()
    }

    #[tokio::test]
    async fn second_sqlite_lock_is_refused_until_release() {
        let folder = tempfile::tempdir().unwrap();
        let db = sqlite_database(folder.path()).await;

        let first = PublisherLock::try_acquire(&db).await.unwrap();
        let second = PublisherLock::try_acquire(&db).await;
        assert!(matches!(second, Err(LockError::Held { .. })), "{second:?}");

        first.release().await.unwrap();
        let third = PublisherLock::try_acquire(&db).await.unwrap();
        drop(third);
        PublisherLock::try_acquire(&db).await.unwrap();
    }

    #[tokio::test]
    async fn held_message_names_the_lock_file() {
        let folder = tempfile::tempdir().unwrap();
        let db = sqlite_database(folder.path()).await;

        let _first = PublisherLock::try_acquire(&db).await.unwrap();
        let message = PublisherLock::try_acquire(&db)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("another publisher run"), "{message}");
        assert!(message.contains("feed.db.publisher.lock"), "{message}");
    }

    #[tokio::test]
    async fn in_memory_lock_is_exclusive_within_the_process() {
        let db = Database::connect("sqlite::memory:").await.unwrap();

        let first = PublisherLock::try_acquire(&db).await.unwrap();
        assert!(PublisherLock::try_acquire(&db).await.is_err());
        drop(first);
        PublisherLock::try_acquire(&db).await.unwrap();
    }
}
