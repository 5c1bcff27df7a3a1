//! Reads published snapshots back from the store, as the edge and a partner would.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use flate2::read::GzDecoder;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use partner_feed_shared::snapshot::{
    download_path, index_path, manifest_path, page_path, snapshot_prefix, Format, LatestPointer,
    Manifest, LATEST_PATH, SNAPSHOTS_FOLDER,
};
use partner_feed_shared::Indicator;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Files of a snapshot's default pages copied to a local folder for the Python tools.
pub struct ExportedPages {
    /// STIX pages, in page order.
    pub stix: Vec<PathBuf>,
    /// For each page, its CSV file and its JSON file.
    pub csv_json_pairs: Vec<(PathBuf, PathBuf)>,
}

/// Read access to the objects of a store.
pub struct SnapshotReader {
    store: Arc<dyn ObjectStore>,
}

impl SnapshotReader {
    pub fn new(store: Arc<dyn ObjectStore>) -> SnapshotReader {
        SnapshotReader { store }
    }

    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        self.store
            .get(&Path::from(path))
            .await
            .unwrap_or_else(|error| panic!("read {path}: {error}"))
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("read {path}: {error}"))
            .to_vec()
    }

    pub async fn exists(&self, path: &str) -> bool {
        match self.store.head(&Path::from(path)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(error) => panic!("head {path}: {error}"),
        }
    }

    /// Returns the object as text, decompressed when its name ends in `.gz`.
    pub async fn text(&self, path: &str) -> String {
        let bytes = self.bytes(path).await;
        let bytes = if path.ends_with(".gz") {
            gunzip(&bytes)
        } else {
            bytes
        };
        String::from_utf8(bytes).unwrap_or_else(|error| panic!("{path} is not UTF-8: {error}"))
    }

    pub async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path).await)
            .unwrap_or_else(|error| panic!("{path} is not JSON: {error}"))
    }

    pub async fn latest(&self) -> Option<LatestPointer> {
        if !self.exists(LATEST_PATH).await {
            return None;
        }
        Some(serde_json::from_slice(&self.bytes(LATEST_PATH).await).expect("latest.json parses"))
    }

    /// Reads the manifest and checks the size and SHA-256 of every object it lists, and that
    /// the snapshot folder contains exactly those objects and the manifest.
    pub async fn verified_manifest(&self, snapshot_id: &str) -> Manifest {
        let path = manifest_path(snapshot_id);
        let manifest: Manifest = serde_json::from_slice(&self.bytes(&path).await)
            .unwrap_or_else(|error| panic!("{path} parses: {error}"));
        assert_eq!(manifest.snapshot_id, snapshot_id);

        for object in &manifest.objects {
            let bytes = self.bytes(&object.path).await;
            assert_eq!(bytes.len() as u64, object.size, "size of {}", object.path);
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                object.sha256,
                "SHA-256 of {}",
                object.path
            );
        }

        let mut expected: BTreeSet<String> = manifest
            .objects
            .iter()
            .map(|object| object.path.clone())
            .collect();
        assert_eq!(
            expected.len(),
            manifest.objects.len(),
            "no object listed twice"
        );
        expected.insert(path);
        let stored: BTreeSet<String> = self
            .paths_under(&snapshot_prefix(snapshot_id))
            .await
            .into_iter()
            .collect();
        assert_eq!(stored, expected, "objects of snapshot {snapshot_id}");
        for required in [index_path(snapshot_id)]
            .into_iter()
            .chain(Format::ALL.map(|format| download_path(snapshot_id, format)))
        {
            assert!(stored.contains(&required), "{required} is listed");
        }
        manifest
    }

    /// Returns the index records in stored order.
    pub async fn index(&self, snapshot_id: &str) -> Vec<Indicator> {
        self.text(&index_path(snapshot_id))
            .await
            .lines()
            .map(|line| serde_json::from_str(line).expect("index line parses"))
            .collect()
    }

    pub async fn json_download(&self, snapshot_id: &str) -> Value {
        self.json(&download_path(snapshot_id, Format::Json)).await
    }

    pub async fn stix_download(&self, snapshot_id: &str) -> Value {
        self.json(&download_path(snapshot_id, Format::Stix)).await
    }

    pub async fn csv_download(&self, snapshot_id: &str) -> String {
        self.text(&download_path(snapshot_id, Format::Csv)).await
    }

    pub async fn paths_under(&self, prefix: &str) -> Vec<String> {
        let listed: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await
            .unwrap_or_else(|error| panic!("list {prefix}: {error}"));
        let mut paths: Vec<String> = listed
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect();
        paths.sort();
        paths
    }

    /// Returns every object with its size and modification time, to detect any write.
    pub async fn all_paths(&self) -> BTreeSet<(String, u64, String)> {
        let listed: Vec<_> = self
            .store
            .list(None)
            .try_collect()
            .await
            .expect("list the store");
        listed
            .into_iter()
            .map(|meta| {
                (
                    meta.location.to_string(),
                    meta.size,
                    meta.last_modified.to_rfc3339(),
                )
            })
            .collect()
    }

    /// Returns the ids of the snapshot folders that hold at least one object.
    pub async fn snapshot_folders(&self) -> BTreeSet<String> {
        self.paths_under(SNAPSHOTS_FOLDER)
            .await
            .iter()
            .filter_map(|path| path.split('/').nth(1).map(str::to_owned))
            .collect()
    }

    /// Copies the default pages of `snapshot_id` to `folder`, and its decompressed STIX
    /// download too when `with_download` is true.
    pub async fn export_pages(
        &self,
        snapshot_id: &str,
        folder: &FsPath,
        with_download: bool,
    ) -> ExportedPages {
        let manifest = self.verified_manifest(snapshot_id).await;
        let mut exported = ExportedPages {
            stix: Vec::new(),
            csv_json_pairs: Vec::new(),
        };
        for page in 1..=manifest.default_pages.total_pages {
            let mut files = Vec::new();
            for format in Format::ALL {
                let file = folder.join(format!("{page}.{}", format.extension()));
                let bytes = self.bytes(&page_path(snapshot_id, format, page)).await;
                std::fs::write(&file, bytes).expect("write an exported page");
                files.push(file);
            }
            exported.stix.push(files[2].clone());
            exported
                .csv_json_pairs
                .push((files[1].clone(), files[0].clone()));
        }
        if !with_download {
            return exported;
        }
        let download = folder.join("download.stix.json");
        let text = self.text(&download_path(snapshot_id, Format::Stix)).await;
        std::fs::write(&download, text).expect("write the STIX download");
        exported.stix.push(download);
        exported
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut decoded)
        .expect("valid gzip");
    decoded
}
