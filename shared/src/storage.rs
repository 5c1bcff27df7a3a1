//! Opening the object store named by `storage.url`: `file://PATH` or `s3://bucket/prefix`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// Error returned when the storage URL cannot be turned into a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The URL has no supported scheme or lacks a bucket.
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating the local folder failed.
    #[error("failed to create the storage folder {path}")]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The object store client could not be built.
    #[error("failed to open object storage at {url}")]
    Open {
        /// The URL as configured.
        url: String,
        /// The object store error.
        #[source]
        source: object_store::Error,
    },
}

/// Opens the store for `url`.
///
/// `file://PATH` is a folder (relative to the working directory unless absolute) created when
/// missing. `s3://bucket/prefix` reads endpoint, region and credentials from the `AWS_*`
/// variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`);
/// an `http://` endpoint is allowed, and path-style addressing is used unless
/// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    if let Some(path) = url.strip_prefix("file://") {
        return open_local(url, path);
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        return open_s3(url, rest);
    }
    Err(StorageError::InvalidUrl {
        url: url.to_owned(),
        reason: "expected file://PATH or s3://bucket/prefix".to_owned(),
    })
}

fn open_local(url: &str, path: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    if path.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: "the path is empty".to_owned(),
        });
    }
    let folder = PathBuf::from(path);
    std::fs::create_dir_all(&folder).map_err(|source| StorageError::CreateFolder {
        path: folder.clone(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&folder).map_err(|source| StorageError::Open {
        url: url.to_owned(),
        source,
    })?;
    Ok(Arc::new(store))
}

fn open_s3(url: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: "the bucket name is missing".to_owned(),
        });
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Ok(endpoint) =
        std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"))
    {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let virtual_hosted =
        std::env::var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_ok_and(|value| value == "true");
    builder = builder.with_virtual_hosted_style_request(virtual_hosted);
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    let store = builder.build().map_err(|source| StorageError::Open {
        url: url.to_owned(),
        source,
    })?;
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}
