//! Writing the objects of one snapshot from the stream of indicators.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use object_store::ObjectStore;
use partner_feed_shared::query::FeedQuery;
use partner_feed_shared::render::{PageWriter, Pagination, SnapshotInfo};
use partner_feed_shared::snapshot::{
    download_path, index_path, page_path, Counts, Format, ManifestObject,
};
use partner_feed_shared::{Indicator, Status, Tlp};
use tokio::task::JoinSet;

use crate::upload::{put_object, PendingBytes, StreamedObject};
use crate::PublishError;

/// Pending bytes of a streamed object are sent once they reach this size.
const SEND_THRESHOLD: usize = 1024 * 1024;

/// Page objects being uploaded at the same time.
const PAGE_UPLOADS_IN_FLIGHT: usize = 24;

/// Bytes buffered in front of each gzip encoder. flate2's encoder zeroes its 32 KiB output
/// buffer on every write call, so the many small writes of the renderers must be batched:
/// unbuffered, that zeroing took more than half of a publish's CPU time.
const GZIP_INPUT_BUFFER: usize = 256 * 1024;

/// A gzip stream into an object upload, fed through a large buffer.
type GzipWriter = BufWriter<GzEncoder<PendingBytes>>;

fn gzip_writer(bytes: PendingBytes) -> GzipWriter {
    BufWriter::with_capacity(
        GZIP_INPUT_BUFFER,
        GzEncoder::new(bytes, Compression::default()),
    )
}

/// Flushes the buffer and writes the gzip trailer.
fn finish_gzip(writer: GzipWriter) -> std::io::Result<PendingBytes> {
    writer
        .into_inner()
        .map_err(|error| error.into_error())?
        .finish()
}

/// Scope of the default pages: the active rows at or below `tlp`, `page_size` per page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DefaultListing {
    /// The configured `default_tlp`.
    pub tlp: Tlp,
    /// The configured `default_page_size`.
    pub page_size: u64,
    /// Rows on all default pages, counted before streaming.
    pub total_items: u64,
}

impl DefaultListing {
    fn includes(&self, indicator: &Indicator) -> bool {
        indicator.status == Status::Active && indicator.tlp <= self.tlp
    }

    pub(crate) fn total_pages(&self) -> u64 {
        self.total_items.div_ceil(self.page_size)
    }

    fn query(&self, format: Format) -> FeedQuery {
        FeedQuery {
            category: None,
            min_risk_score: None,
            since: None,
            tlp: self.tlp,
            page: 1,
            page_size: self.page_size,
            format,
        }
    }
}

/// Totals of a finished snapshot and the objects it wrote, manifest excepted.
#[derive(Debug)]
pub(crate) struct WrittenSnapshot {
    pub index_records: u64,
    pub default_items: u64,
    pub counts: Counts,
    pub objects: Vec<ManifestObject>,
}

/// Identifies an object for the manifest's order: the index, then the downloads, then the
/// pages by format and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ObjectKey {
    Index,
    Download(Format),
    Page(Format, u64),
}

struct Download {
    format: Format,
    writer: PageWriter<GzipWriter>,
    object: StreamedObject,
}

/// The page being filled, in every format.
struct OpenPage {
    number: u64,
    rows: u64,
    writers: Vec<(Format, PageWriter<Vec<u8>>)>,
}

/// Writes one snapshot: the index, the gzip downloads and the default pages.
pub(crate) struct SnapshotWriter {
    store: Arc<dyn ObjectStore>,
    snapshot: SnapshotInfo,
    listing: DefaultListing,
    index: GzipWriter,
    index_object: StreamedObject,
    downloads: Vec<Download>,
    page: Option<OpenPage>,
    pages_started: u64,
    page_uploads: JoinSet<Result<(ObjectKey, ManifestObject), PublishError>>,
    objects: BTreeMap<ObjectKey, ManifestObject>,
    index_records: u64,
    default_items: u64,
    counts: Counts,
}

impl SnapshotWriter {
    /// Starts the index and download uploads of `snapshot`.
    pub(crate) fn start(
        store: Arc<dyn ObjectStore>,
        snapshot: SnapshotInfo,
        listing: DefaultListing,
    ) -> Result<SnapshotWriter, PublishError> {
        let (index_object, index_bytes) =
            StreamedObject::start(store.clone(), index_path(&snapshot.id));
        let index = gzip_writer(index_bytes);

        let mut downloads = Vec::with_capacity(Format::ALL.len());
        for format in Format::ALL {
            let path = download_path(&snapshot.id, format);
            let (object, bytes) = StreamedObject::start(store.clone(), path.clone());
            let writer = PageWriter::new(format, gzip_writer(bytes), &snapshot, None)
                .map_err(|source| PublishError::render(path, source))?;
            downloads.push(Download {
                format,
                writer,
                object,
            });
        }

        Ok(SnapshotWriter {
            store,
            snapshot,
            listing,
            index,
            index_object,
            downloads,
            page: None,
            pages_started: 0,
            page_uploads: JoinSet::new(),
            objects: BTreeMap::new(),
            index_records: 0,
            default_items: 0,
            counts: Counts::default(),
        })
    }

    /// Adds one indicator (never `TLP:RED`) in publish order.
    pub(crate) async fn push(&mut self, indicator: &Indicator) -> Result<(), PublishError> {
        self.append_to_index(indicator)?;
        self.count(indicator);

        if self.listing.includes(indicator) {
            self.append_to_downloads(indicator)?;
            self.append_to_page(indicator).await?;
            self.default_items += 1;
        }

        self.send_pending(SEND_THRESHOLD).await
    }

    /// Closes every object and waits for every upload.
    pub(crate) async fn finish(mut self) -> Result<WrittenSnapshot, PublishError> {
        self.close_page().await?;
        while let Some(joined) = self.page_uploads.join_next().await {
            let (key, object) = joined.map_err(PublishError::Task)??;
            self.objects.insert(key, object);
        }

        let index_path = index_path(&self.snapshot.id);
        let index_bytes =
            finish_gzip(self.index).map_err(|source| PublishError::render(index_path, source))?;
        drop(index_bytes);
        let index = self.index_object.finish().await?;
        self.objects.insert(ObjectKey::Index, index);

        for download in self.downloads {
            let path = download_path(&self.snapshot.id, download.format);
            let encoder = download
                .writer
                .finish()
                .map_err(|source| PublishError::render(path.clone(), source))?;
            finish_gzip(encoder).map_err(|source| PublishError::render(path, source))?;
            let object = download.object.finish().await?;
            self.objects
                .insert(ObjectKey::Download(download.format), object);
        }

        Ok(WrittenSnapshot {
            index_records: self.index_records,
            default_items: self.default_items,
            counts: self.counts,
            objects: self.objects.into_values().collect(),
        })
    }

    /// Stops every upload; objects already complete stay for retention to remove.
    pub(crate) async fn abort(mut self) {
        self.page_uploads.abort_all();
        self.index_object.abort().await;
        for download in self.downloads {
            download.object.abort().await;
        }
    }

    fn append_to_index(&mut self, indicator: &Indicator) -> Result<(), PublishError> {
        let written = serde_json::to_writer(&mut self.index, indicator)
            .map_err(std::io::Error::from)
            .and_then(|()| self.index.write_all(b"\n"));
        written.map_err(|source| PublishError::render(index_path(&self.snapshot.id), source))?;
        self.index_records += 1;
        Ok(())
    }

    fn count(&mut self, indicator: &Indicator) {
        *self
            .counts
            .by_status
            .entry(indicator.status.as_str().to_owned())
            .or_default() += 1;
        if indicator.status != Status::Active {
            return;
        }
        if let Some(count) = self.counts.active_by_category.get_mut(&indicator.category) {
            *count += 1;
        } else {
            self.counts
                .active_by_category
                .insert(indicator.category.clone(), 1);
        }
        *self
            .counts
            .active_by_tlp
            .entry(indicator.tlp.as_str().to_owned())
            .or_default() += 1;
    }

    fn append_to_downloads(&mut self, indicator: &Indicator) -> Result<(), PublishError> {
        for download in &mut self.downloads {
            download.writer.push(indicator).map_err(|source| {
                PublishError::render(download_path(&self.snapshot.id, download.format), source)
            })?;
        }
        Ok(())
    }

    async fn append_to_page(&mut self, indicator: &Indicator) -> Result<(), PublishError> {
        if self.page.is_none() {
            self.page = Some(self.open_page()?);
        }
        let Some(page) = self.page.as_mut() else {
            unreachable!("the page was opened above");
        };
        for (format, writer) in &mut page.writers {
            writer.push(indicator).map_err(|source| {
                PublishError::render(page_path(&self.snapshot.id, *format, page.number), source)
            })?;
        }
        page.rows += 1;

        if page.rows >= self.listing.page_size {
            self.close_page().await?;
        }
        Ok(())
    }

    fn open_page(&mut self) -> Result<OpenPage, PublishError> {
        self.pages_started += 1;
        let number = self.pages_started;
        let mut writers = Vec::with_capacity(Format::ALL.len());
        for format in Format::ALL {
            let pagination = self.pagination(format, number);
            let writer = PageWriter::new(format, Vec::new(), &self.snapshot, Some(&pagination))
                .map_err(|source| {
                    PublishError::render(page_path(&self.snapshot.id, format, number), source)
                })?;
            writers.push((format, writer));
        }
        Ok(OpenPage {
            number,
            rows: 0,
            writers,
        })
    }

    fn pagination(&self, format: Format, page: u64) -> Pagination {
        let query = self.listing.query(format);
        let next_link =
            (page < self.listing.total_pages()).then(|| query.link(&self.snapshot.id, page + 1));
        Pagination {
            page,
            page_size: self.listing.page_size,
            total_items: self.listing.total_items,
            self_link: query.link(&self.snapshot.id, page),
            next_link,
        }
    }

    /// Renders the open page, if any, and queues its uploads.
    async fn close_page(&mut self) -> Result<(), PublishError> {
        let Some(page) = self.page.take() else {
            return Ok(());
        };
        for (format, writer) in page.writers {
            let path = page_path(&self.snapshot.id, format, page.number);
            let bytes = writer
                .finish()
                .map_err(|source| PublishError::render(path.clone(), source))?;
            self.wait_for_page_upload_slot().await?;
            let store = self.store.clone();
            let key = ObjectKey::Page(format, page.number);
            self.page_uploads.spawn(async move {
                let object = put_object(store.as_ref(), path, bytes).await?;
                Ok((key, object))
            });
        }
        Ok(())
    }

    async fn wait_for_page_upload_slot(&mut self) -> Result<(), PublishError> {
        while self.page_uploads.len() >= PAGE_UPLOADS_IN_FLIGHT {
            if let Some(joined) = self.page_uploads.join_next().await {
                let (key, object) = joined.map_err(PublishError::Task)??;
                self.objects.insert(key, object);
            }
        }
        Ok(())
    }

    async fn send_pending(&mut self, threshold: usize) -> Result<(), PublishError> {
        self.index_object.send_pending(threshold).await?;
        for download in &mut self.downloads {
            download.object.send_pending(threshold).await?;
        }
        Ok(())
    }
}
