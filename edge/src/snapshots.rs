//! Snapshots served by the edge: the latest one, swapped atomically when `latest.json` moves,
//! and older ones loaded on demand for pinned pagination.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use flate2::read::GzDecoder;
use lru::LruCache;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use partner_feed_shared::render::SnapshotInfo;
use partner_feed_shared::snapshot::{
    index_path, manifest_path, page_path, Format, LatestPointer, Manifest, LATEST_PATH,
};
use partner_feed_shared::Indicator;

use crate::cache::WeightedLru;
use crate::index::{Selection, SelectionKey, SnapshotIndex};

/// Older snapshots kept in memory for pinned pagination. Each contains a whole index, so this stays small.
const PINNED_SNAPSHOTS: usize = 3;

/// Interval between checks that a pinned snapshot's manifest still exists, so a deleted snapshot returns 410.
const PINNED_RECHECK: Duration = Duration::from_secs(1);

/// Selections cached per snapshot.
const SELECTION_CACHE_ENTRIES: usize = 256;

/// Most positions (4 bytes each) held by the selection cache of one snapshot.
const SELECTION_CACHE_POSITIONS: usize = 8_000_000;

/// Stored pages cached per snapshot.
const PAGE_CACHE_ENTRIES: usize = 4_096;

/// Most bytes held by the stored-page cache of one snapshot.
const PAGE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Error of reading a snapshot from object storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// An object could not be read.
    #[error("failed to read {path} from object storage")]
    Read {
        /// Object path.
        path: String,
        /// The store error.
        #[source]
        source: object_store::Error,
    },
    /// A JSON object or index line could not be parsed.
    #[error("invalid content in {path}")]
    Parse {
        /// Object path.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The index could not be decompressed.
    #[error("failed to decompress {path}")]
    Decompress {
        /// Object path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An object does not match the SHA-256 or record count in the manifest.
    #[error("{path} does not match the manifest: {reason}")]
    Mismatch {
        /// Object path.
        path: String,
        /// What differs.
        reason: String,
    },
    /// Decoding the index on a blocking thread failed.
    #[error("the task decoding {path} failed")]
    Task {
        /// Object path.
        path: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Error of finding a pinned snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    /// Its manifest is gone: the publisher deleted it (or it never existed).
    #[error("snapshot {0} is no longer kept")]
    Gone(String),
    /// Storage failed while reading it.
    #[error(transparent)]
    Unavailable(#[from] SnapshotError),
}

/// One snapshot in memory: manifest, index and caches of its pages and selections.
pub struct LoadedSnapshot {
    /// The manifest.
    pub manifest: Manifest,
    /// Id and generation time, as the renderers print them.
    pub info: SnapshotInfo,
    /// The filterable index.
    pub index: SnapshotIndex,
    object_sha256: HashMap<String, String>,
    selections: WeightedLru<SelectionKey, Arc<Vec<u32>>>,
    pages: WeightedLru<(Format, u64), Bytes>,
    checked_at: Mutex<Instant>,
}

impl std::fmt::Debug for LoadedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedSnapshot")
            .field("id", &self.info.id)
            .field("indicators", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl LoadedSnapshot {
    /// Builds a snapshot from its manifest and index rows.
    pub fn new(manifest: Manifest, indicators: Vec<Indicator>) -> LoadedSnapshot {
        let object_sha256 = manifest
            .objects
            .iter()
            .map(|object| (object.path.clone(), object.sha256.clone()))
            .collect();
        LoadedSnapshot {
            info: SnapshotInfo {
                id: manifest.snapshot_id.clone(),
                generated_at: manifest.generated_at,
            },
            index: SnapshotIndex::new(indicators),
            object_sha256,
            selections: WeightedLru::new(
                NonZeroUsize::new(SELECTION_CACHE_ENTRIES).expect("non-zero"),
                SELECTION_CACHE_POSITIONS,
            ),
            pages: WeightedLru::new(
                NonZeroUsize::new(PAGE_CACHE_ENTRIES).expect("non-zero"),
                PAGE_CACHE_BYTES,
            ),
            manifest,
            checked_at: Mutex::new(Instant::now()),
        }
    }

    /// Returns the snapshot id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Returns the positions matching `selection`, from the cache when the same selection was made before.
    pub fn select(&self, selection: &Selection) -> Arc<Vec<u32>> {
        let key = selection.key();
        if let Some(positions) = self.selections.get(&key) {
            return positions;
        }
        let positions = Arc::new(self.index.select(selection));
        self.selections
            .insert(key, Arc::clone(&positions), positions.len().max(1));
        positions
    }

    /// Returns the manifest's SHA-256 of an object of this snapshot.
    pub fn object_sha256(&self, path: &str) -> Option<&str> {
        self.object_sha256.get(path).map(String::as_str)
    }

    /// Returns the manifest's size of an object of this snapshot.
    pub fn object_size(&self, path: &str) -> Option<u64> {
        self.manifest
            .objects
            .iter()
            .find(|object| object.path == path)
            .map(|object| object.size)
    }
}

/// The snapshots the edge serves: the current one and a few pinned older ones.
pub struct SnapshotCatalog {
    store: Arc<dyn ObjectStore>,
    current: ArcSwapOption<LoadedSnapshot>,
    pinned: Mutex<LruCache<String, Arc<LoadedSnapshot>>>,
    pinned_loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SnapshotCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCatalog")
            .field(
                "current",
                &self.current.load_full().map(|s| s.info.id.clone()),
            )
            .finish_non_exhaustive()
    }
}

/// Outcome of a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// No `latest.json` exists yet.
    NoSnapshot,
    /// `latest.json` still names the served snapshot.
    Unchanged,
    /// A new snapshot is now served.
    Swapped {
        /// Previous snapshot id, if any.
        previous: Option<String>,
        /// New snapshot id.
        current: String,
    },
}

impl SnapshotCatalog {
    /// Creates an empty catalog reading from `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> SnapshotCatalog {
        SnapshotCatalog {
            store,
            current: ArcSwapOption::empty(),
            pinned: Mutex::new(LruCache::new(
                NonZeroUsize::new(PINNED_SNAPSHOTS).expect("non-zero"),
            )),
            pinned_loading: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns the object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Returns the snapshot served as latest, if one is loaded.
    pub fn current(&self) -> Option<Arc<LoadedSnapshot>> {
        self.current.load_full()
    }

    /// Reads `latest.json` and, when it names a new snapshot, loads it and swaps it in.
    ///
    /// The previous snapshot moves to the pinned cache, so pagination pinned to it goes on.
    pub async fn refresh(&self) -> Result<RefreshOutcome, SnapshotError> {
        let pointer: LatestPointer = match self.read_json(LATEST_PATH).await {
            Ok(pointer) => pointer,
            Err(SnapshotError::Read {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(RefreshOutcome::NoSnapshot),
            Err(error) => return Err(error),
        };
        let previous = self.current();
        if previous
            .as_ref()
            .is_some_and(|current| current.info.id == pointer.snapshot_id)
        {
            return Ok(RefreshOutcome::Unchanged);
        }
        let cached = self.take_pinned(&pointer.snapshot_id);
        let loaded = match cached {
            Some(snapshot) => snapshot,
            None => Arc::new(self.load(&pointer.snapshot_id).await?),
        };
        let current = loaded.info.id.clone();
        self.current.store(Some(loaded));
        if let Some(previous) = &previous {
            self.remember_pinned(Arc::clone(previous));
        }
        Ok(RefreshOutcome::Swapped {
            previous: previous.map(|snapshot| snapshot.info.id.clone()),
            current,
        })
    }

    /// Returns the snapshot `id` for pinned pagination: the current one, a cached one whose
    /// manifest still exists, or one loaded now.
    pub async fn pinned(&self, id: &str) -> Result<Arc<LoadedSnapshot>, PinnedError> {
        if let Some(current) = self.current().filter(|current| current.info.id == id) {
            return Ok(current);
        }
        if let Some(snapshot) = self.cached_pinned(id) {
            return self.recheck(snapshot).await;
        }
        let _loading = self.pinned_loading.lock().await;
        if let Some(snapshot) = self.cached_pinned(id) {
            return Ok(snapshot);
        }
        match self.load(id).await {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.remember_pinned(Arc::clone(&snapshot));
                Ok(snapshot)
            }
            Err(SnapshotError::Read {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Err(PinnedError::Gone(id.to_owned())),
            Err(error) => Err(PinnedError::Unavailable(error)),
        }
    }

    async fn recheck(
        &self,
        snapshot: Arc<LoadedSnapshot>,
    ) -> Result<Arc<LoadedSnapshot>, PinnedError> {
        let due = {
            let checked_at = snapshot
                .checked_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            checked_at.elapsed() >= PINNED_RECHECK
        };
        if !due {
            return Ok(snapshot);
        }
        let path = manifest_path(&snapshot.info.id);
        match self.store.head(&StorePath::from(path.as_str())).await {
            Ok(_) => {
                *snapshot
                    .checked_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Instant::now();
                Ok(snapshot)
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.take_pinned(&snapshot.info.id);
                Err(PinnedError::Gone(snapshot.info.id.clone()))
            }
            Err(source) => Err(PinnedError::Unavailable(SnapshotError::Read {
                path,
                source,
            })),
        }
    }

    fn cached_pinned(&self, id: &str) -> Option<Arc<LoadedSnapshot>> {
        let mut pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.get(id).cloned()
    }

    fn take_pinned(&self, id: &str) -> Option<Arc<LoadedSnapshot>> {
        let mut pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.pop(id)
    }

    fn remember_pinned(&self, snapshot: Arc<LoadedSnapshot>) {
        *snapshot
            .checked_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let mut pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.put(snapshot.info.id.clone(), snapshot);
    }

    /// Loads a snapshot's manifest and index, checking the index against the manifest.
    pub async fn load(&self, id: &str) -> Result<LoadedSnapshot, SnapshotError> {
        let manifest: Manifest = self.read_json(&manifest_path(id)).await?;
        let path = index_path(id);
        let compressed = self.read_bytes(&path).await?;
        check_sha256(&manifest, &path, &compressed)?;
        let decode_path = path.clone();
        let indicators =
            tokio::task::spawn_blocking(move || decode_index(&decode_path, &compressed))
                .await
                .map_err(|source| SnapshotError::Task {
                    path: path.clone(),
                    source,
                })??;
        if indicators.len() as u64 != manifest.indicator_count {
            return Err(SnapshotError::Mismatch {
                path,
                reason: format!(
                    "{} records, the manifest counts {}",
                    indicators.len(),
                    manifest.indicator_count
                ),
            });
        }
        let snapshot =
            tokio::task::spawn_blocking(move || LoadedSnapshot::new(manifest, indicators))
                .await
                .map_err(|source| SnapshotError::Task { path, source })?;
        Ok(snapshot)
    }

    /// Returns a precomputed page and its SHA-256, from the cache or from storage.
    ///
    /// Returns `None` when the stored bytes do not match the manifest, so the caller renders the page itself.
    pub async fn stored_page(
        &self,
        snapshot: &LoadedSnapshot,
        format: Format,
        page: u64,
    ) -> Result<Option<(Bytes, String)>, SnapshotError> {
        let path = page_path(snapshot.id(), format, page);
        let Some(sha256) = snapshot.object_sha256(&path).map(str::to_owned) else {
            return Ok(None);
        };
        if let Some(bytes) = snapshot.pages.get(&(format, page)) {
            return Ok(Some((bytes, sha256)));
        }
        let bytes = self.read_bytes(&path).await?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            tracing::warn!(snapshot_id = %snapshot.id(), path = %path, "stored page does not match its manifest SHA-256; rendering it instead");
            return Ok(None);
        }
        snapshot
            .pages
            .insert((format, page), bytes.clone(), bytes.len());
        Ok(Some((bytes, sha256)))
    }

    async fn read_bytes(&self, path: &str) -> Result<Bytes, SnapshotError> {
        let read = |source| SnapshotError::Read {
            path: path.to_owned(),
            source,
        };
        let location = StorePath::from(path);
        self.store
            .get(&location)
            .await
            .map_err(read)?
            .bytes()
            .await
            .map_err(read)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, SnapshotError> {
        let bytes = self.read_bytes(path).await?;
        serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

fn check_sha256(manifest: &Manifest, path: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
    let expected = manifest
        .objects
        .iter()
        .find(|object| object.path == path)
        .ok_or_else(|| SnapshotError::Mismatch {
            path: path.to_owned(),
            reason: "the manifest does not list it".to_owned(),
        })?;
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != expected.sha256 {
        return Err(SnapshotError::Mismatch {
            path: path.to_owned(),
            reason: format!("SHA-256 {actual}, the manifest says {}", expected.sha256),
        });
    }
    Ok(())
}

fn decode_index(path: &str, compressed: &[u8]) -> Result<Vec<Indicator>, SnapshotError> {
    let reader = BufReader::new(GzDecoder::new(compressed));
    let mut indicators = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|source| SnapshotError::Decompress {
            path: path.to_owned(),
            source,
        })?;
        if line.is_empty() {
            continue;
        }
        let indicator = serde_json::from_str(&line).map_err(|source| SnapshotError::Parse {
            path: path.to_owned(),
            source,
        })?;
        indicators.push(indicator);
    }
    Ok(indicators)
}
