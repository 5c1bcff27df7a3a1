//! The error of a publisher run.

use std::error::Error as StdError;

use partner_feed_shared::db::{DbError, LockError};

/// Error that stops a publisher run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Another run holds the publisher lock.
    #[error("another publisher run holds the lock ({lock}); wait for it to finish and try again")]
    LockHeld {
        /// The lock, such as the lock file path or the advisory lock key.
        lock: String,
    },
    /// Taking or keeping the publisher lock failed for another reason.
    #[error("failed to take or keep the publisher lock")]
    Lock(#[source] LockError),
    /// A database query failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// An object store request failed.
    #[error("failed to {action} {path} in object storage")]
    Store {
        /// The operation, such as "write" or "read".
        action: &'static str,
        /// Path of the object or folder in the store.
        path: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },
    /// Writing a streamed object (index or download) failed.
    #[error("failed to write {path} to object storage")]
    Upload {
        /// Path of the object in the store.
        path: String,
        /// The error, as the streaming writer reports it.
        #[source]
        source: std::io::Error,
    },
    /// Rendering or compressing an object failed.
    #[error("failed to render {path}")]
    Render {
        /// Path of the object being rendered.
        path: String,
        /// The renderer or encoder error.
        #[source]
        source: std::io::Error,
    },
    /// A stored JSON object (`latest.json`, a manifest) could not be read.
    #[error("invalid JSON in {path}")]
    InvalidJson {
        /// Path of the object in the store.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The rows streamed do not match the totals counted in the same transaction.
    #[error(
        "the read of indicators is inconsistent: counted {counted} {what} but streamed {streamed}"
    )]
    InconsistentRead {
        /// The rows compared, such as "index records".
        what: &'static str,
        /// Rows counted before streaming.
        counted: u64,
        /// Rows streamed.
        streamed: u64,
    },
    /// `publisher.schedule` is not a cron expression with seconds.
    #[error("invalid publisher.schedule {schedule:?}")]
    InvalidSchedule {
        /// The expression as configured.
        schedule: String,
        /// The parse error.
        #[source]
        source: cron::error::Error,
    },
    /// A page upload task ended without a result.
    #[error("a page upload task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The run was cancelled (shutdown) before it published.
    #[error("the publisher run was cancelled before it finished")]
    Cancelled,
}

impl PublishError {
    pub(crate) fn store(
        action: &'static str,
        path: impl Into<String>,
        source: object_store::Error,
    ) -> PublishError {
        PublishError::Store {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn render(path: impl Into<String>, source: std::io::Error) -> PublishError {
        PublishError::Render {
            path: path.into(),
            source,
        }
    }
}

impl From<LockError> for PublishError {
    fn from(error: LockError) -> Self {
        match error {
            LockError::Held { lock } => PublishError::LockHeld { lock },
            other => PublishError::Lock(other),
        }
    }
}

/// Joins an error and its sources into one line, `outer: inner: innermost`.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // `#[error(transparent)]` wrappers repeat their source's message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
