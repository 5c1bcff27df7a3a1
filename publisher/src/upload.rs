//! Uploads of snapshot objects that record the SHA-256 and size of the bytes they send.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use partner_feed_shared::snapshot::ManifestObject;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::PublishError;

/// Size at which a streamed object switches from one `PUT` to a multipart upload, and the
/// size of each part. 5 MiB is the smallest part S3 accepts.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts of one streamed object uploaded at the same time.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes a synchronous encoder wrote and that its [`StreamedObject`] has not sent yet.
///
/// The renderers and gzip encoders write through `std::io::Write`, so they cannot wait for
/// the network. They write here, and the publisher moves the bytes to the upload between rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingBytes(Arc<Mutex<Vec<u8>>>);

impl PendingBytes {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for PendingBytes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An object written in pieces of unknown total size, hashed as it is sent.
pub(crate) struct StreamedObject {
    path: String,
    pending: PendingBytes,
    writer: BufWriter,
    hasher: Sha256,
    size: u64,
}

impl StreamedObject {
    /// Starts the object at `path`; the encoder writes into the returned [`PendingBytes`].
    pub(crate) fn start(store: Arc<dyn ObjectStore>, path: String) -> (Self, PendingBytes) {
        let pending = PendingBytes::default();
        let writer = BufWriter::with_capacity(store, Path::from(path.as_str()), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let object = StreamedObject {
            path,
            pending: pending.clone(),
            writer,
            hasher: Sha256::new(),
            size: 0,
        };
        (object, pending)
    }

    /// Sends the pending bytes once there are at least `threshold` of them.
    ///
    /// Waits while the upload has as many parts in flight as it may, which is what keeps the
    /// memory of a run flat when the store is slower than the renderers.
    pub(crate) async fn send_pending(&mut self, threshold: usize) -> Result<(), PublishError> {
        if self.pending.len() < threshold.max(1) {
            return Ok(());
        }
        let bytes = self.pending.take();
        self.hasher.update(&bytes);
        self.size += bytes.len() as u64;
        self.writer
            .put(Bytes::from(bytes))
            .await
            .map_err(|source| PublishError::store("write", self.path.clone(), source))
    }

    /// Sends what is left and completes the upload.
    pub(crate) async fn finish(mut self) -> Result<ManifestObject, PublishError> {
        self.send_pending(1).await?;
        self.writer
            .shutdown()
            .await
            .map_err(|source| PublishError::Upload {
                path: self.path.clone(),
                source,
            })?;
        Ok(ManifestObject {
            path: self.path,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }

    /// Abandons the upload and removes the parts already sent, as far as the store allows.
    pub(crate) async fn abort(mut self) {
        if let Err(error) = self.writer.abort().await {
            tracing::debug!(path = %self.path, %error, "failed to abort an upload");
        }
    }
}

/// Writes a small object in one request and describes it for the manifest.
pub(crate) async fn put_object(
    store: &dyn ObjectStore,
    path: String,
    bytes: Vec<u8>,
) -> Result<ManifestObject, PublishError> {
    let described = describe(&path, &bytes);
    store
        .put(&Path::from(path.as_str()), PutPayload::from(bytes))
        .await
        .map_err(|source| PublishError::store("write", path, source))?;
    Ok(described)
}

/// Returns the manifest entry of `bytes` stored at `path`.
pub(crate) fn describe(path: &str, bytes: &[u8]) -> ManifestObject {
    ManifestObject {
        path: path.to_owned(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn streamed_object_hashes_what_it_stores() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (mut object, mut pending) = StreamedObject::start(store.clone(), "a/b.bin".to_owned());
        let mut expected = Vec::new();
        for round in 0..200u32 {
            let chunk = vec![(round % 251) as u8; 64 * 1024];
            pending.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            object.send_pending(1024 * 1024).await.unwrap();
        }

        let described = object.finish().await.unwrap();

        let stored = store
            .get(&Path::from("a/b.bin"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(stored.len(), expected.len());
        assert_eq!(described.size, expected.len() as u64);
        assert_eq!(described.sha256, hex::encode(Sha256::digest(&expected)));
        assert_eq!(describe("a/b.bin", &stored), described);
    }

    #[tokio::test]
    async fn empty_streamed_object_is_stored_empty() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (object, _pending) = StreamedObject::start(store.clone(), "empty".to_owned());

        let described = object.finish().await.unwrap();

        let stored = store.get(&Path::from("empty")).await.unwrap();
        assert_eq!(stored.meta.size, 0);
        assert_eq!(described, describe("empty", b""));
    }
}
