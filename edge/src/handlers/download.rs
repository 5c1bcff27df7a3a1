//! `GET /feeds/indicators/download`: streams a snapshot's stored gzip download, decompressed on the fly when the client does not accept gzip.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{ReaderStream, StreamReader};
use warp::http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use partner_feed_shared::snapshot::{download_path, Format};

use super::page::{insert_text, SNAPSHOT_HEADER};
use super::{authorize, choose_snapshot, finish, FeedContext, IncomingRequest};
use crate::encoding::{accepts_gzip, etag_from_sha256, if_none_match_matches};
use crate::error::ApiError;
use crate::query::{parse_params, DOWNLOAD_PARAMETERS};
use crate::snapshots::LoadedSnapshot;
use crate::state::AppState;

/// Chunks buffered between the storage reader and the response body.
const STREAM_BUFFER_CHUNKS: usize = 8;

/// Suffix of the ETag of the decompressed representation.
const IDENTITY_ETAG_SUFFIX: &str = "-identity";

/// Handles `GET /feeds/indicators/download`.
pub(crate) async fn download(
    state: Arc<AppState>,
    request: IncomingRequest,
) -> Result<Response, Infallible> {
    let mut context = FeedContext::start();
    let outcome = serve_download(&state, &request, &mut context).await;
    Ok(finish(&state, &request, context, outcome).await)
}

async fn serve_download(
    state: &AppState,
    request: &IncomingRequest,
    context: &mut FeedContext,
) -> Result<Response, ApiError> {
    let (pairs, key) = authorize(state, request, context, DOWNLOAD_PARAMETERS).await?;

    let max_page_size = u64::from(state.settings.partner_feed.max_page_size);
    let params = parse_params(&pairs, DOWNLOAD_PARAMETERS, max_page_size)?;
    let format = params.format.unwrap_or(Format::Json);
    let snapshot = choose_snapshot(state, params.snapshot.as_deref()).await?;
    context.served_from(&snapshot);

    let download_tlp = snapshot.manifest.default_pages.tlp;
    if key.scopes.max_tlp < download_tlp || !key.scopes.categories.is_empty() {
        return Err(ApiError::DownloadOutOfScope { tlp: download_tlp });
    }
    let path = download_path(snapshot.id(), format);
    let sha256 = snapshot.object_sha256(&path).ok_or_else(|| {
        tracing::error!(snapshot_id = %snapshot.id(), path = %path, "the manifest does not list the download");
        ApiError::Unavailable {
            dependency: "object storage",
        }
    })?;
    context.result_count = Some(snapshot.manifest.default_pages.total_items as i64);

    let use_gzip = accepts_gzip(request.header(ACCEPT_ENCODING));
    let etag = if use_gzip {
        etag_from_sha256(sha256)
    } else {
        etag_from_sha256(&format!("{sha256}{IDENTITY_ETAG_SUFFIX}"))
    };
    if if_none_match_matches(request.header(IF_NONE_MATCH), &etag) {
        let mut response = Response::new(Bytes::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        add_headers(&mut response, &snapshot, format, &etag);
        return Ok(response);
    }

    let object = state
        .catalog
        .store()
        .get(&StorePath::from(path.as_str()))
        .await
        .map_err(|error| match error {
            object_store::Error::NotFound { .. } => ApiError::SnapshotGone {
                snapshot_id: snapshot.id().to_owned(),
            },
            error => {
                tracing::error!(path = %path, error = %crate::audit::error_chain(&error), "failed to read a download");
                ApiError::Unavailable {
                    dependency: "object storage",
                }
            }
        })?;
    let chunks = object.into_stream().map_err(io::Error::other);
    let mut response = if use_gzip {
        let mut response = streamed(chunks);
        let headers = response.headers_mut();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        if let Some(size) = snapshot.object_size(&path) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        }
        response
    } else {
        let decoder =
            async_compression::tokio::bufread::GzipDecoder::new(StreamReader::new(chunks));
        streamed(ReaderStream::new(decoder))
    };
    add_headers(&mut response, &snapshot, format, &etag);
    Ok(response)
}

/// Builds a streaming response; a task forwards the chunks, so the body needs no `Sync` stream.
fn streamed<S>(chunks: S) -> Response
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(STREAM_BUFFER_CHUNKS);
    tokio::spawn(async move {
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            let failed = chunk.is_err();
            if let Err(error) = &chunk {
                tracing::error!(error = %error, "failed while streaming a download");
            }
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    warp::reply::stream(ReceiverStream::new(receiver)).into_response()
}

fn add_headers(response: &mut Response, snapshot: &LoadedSnapshot, format: Format, etag: &str) {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    insert_text(headers, ETAG, etag);
    insert_text(headers, SNAPSHOT_HEADER, snapshot.id());
    insert_text(
        headers,
        CONTENT_DISPOSITION,
        &format!(
            "attachment; filename=\"indicators-{}.{}\"",
            snapshot.id(),
            format.extension()
        ),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
}
