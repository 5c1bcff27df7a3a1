//! `GET /feeds/indicators`: one page of a query, from the stored default pages or rendered from the index.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use warp::http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LINK, VARY,
};
use warp::http::StatusCode;
use warp::reply::Response;

use partner_feed_shared::render::{render_page, Pagination};

use super::{authorize, choose_snapshot, finish, FeedContext, IncomingRequest};
use crate::encoding::{
    accepts_gzip, etag_from_sha256, etag_of, gzip, gzip_etag, if_none_match_matches,
};
use crate::error::ApiError;
use crate::index::CategorySelection;
use crate::query::{parse_params, resolve, ResolvedQuery, FEED_PARAMETERS};
use crate::snapshots::LoadedSnapshot;
use crate::state::AppState;

/// Header naming the snapshot a response comes from.
pub(crate) const SNAPSHOT_HEADER: &str = "x-snapshot-id";

/// Header with the number of matching indicators on all pages.
const TOTAL_COUNT_HEADER: &str = "x-total-count";

/// A page ready to send.
struct PageBody {
    bytes: Bytes,
    etag: String,
    total_items: u64,
    rows: u64,
    next_link: Option<String>,
}

/// Handles `GET /feeds/indicators`.
pub(crate) async fn feed(
    state: Arc<AppState>,
    request: IncomingRequest,
) -> Result<Response, Infallible> {
    let mut context = FeedContext::start();
    let outcome = serve_page(&state, &request, &mut context).await;
    Ok(finish(&state, &request, context, outcome).await)
}

async fn serve_page(
    state: &AppState,
    request: &IncomingRequest,
    context: &mut FeedContext,
) -> Result<Response, ApiError> {
    let (pairs, key) = authorize(state, request, context, FEED_PARAMETERS).await?;

    let feed = &state.settings.partner_feed;
    let params = parse_params(&pairs, FEED_PARAMETERS, u64::from(feed.max_page_size))?;
    let resolved = resolve(&params, &key.scopes, feed)?;
    context.query_params = resolved.audit_json();

    let snapshot = choose_snapshot(state, resolved.snapshot.as_deref()).await?;
    context.served_from(&snapshot);
    let page = build_page(state, &snapshot, &resolved).await?;
    context.result_count = Some(page.rows as i64);
    Ok(page_response(request, &resolved, &snapshot, page))
}

async fn build_page(
    state: &AppState,
    snapshot: &LoadedSnapshot,
    resolved: &ResolvedQuery,
) -> Result<PageBody, ApiError> {
    let query = &resolved.query;
    let defaults = &snapshot.manifest.default_pages;
    let is_stored = resolved.selection.categories == CategorySelection::All
        && query.is_default_listing(defaults.tlp, defaults.page_size)
        && query.page <= defaults.total_pages;
    if is_stored {
        let stored = state
            .catalog
            .stored_page(snapshot, query.format, query.page)
            .await
            .map_err(|error| {
                tracing::error!(snapshot_id = %snapshot.id(), error = %crate::audit::error_chain(&error), "failed to read a stored page");
                ApiError::Unavailable {
                    dependency: "object storage",
                }
            })?;
        if let Some((bytes, sha256)) = stored {
            let total_items = defaults.total_items;
            let next_link = (query.page < defaults.total_pages)
                .then(|| query.link(snapshot.id(), query.page + 1));
            return Ok(PageBody {
                bytes,
                etag: etag_from_sha256(&sha256),
                total_items,
                rows: rows_on_page(total_items, query.page, query.page_size),
                next_link,
            });
        }
    }
    Ok(render_from_index(snapshot, resolved))
}

fn render_from_index(snapshot: &LoadedSnapshot, resolved: &ResolvedQuery) -> PageBody {
    let query = &resolved.query;
    let positions = snapshot.select(&resolved.selection);
    let total_items = positions.len() as u64;
    let start = (query.page - 1).saturating_mul(query.page_size);
    let end = start.saturating_add(query.page_size).min(total_items);
    let rows: &[u32] = if start >= total_items {
        &[]
    } else {
        &positions[start as usize..end as usize]
    };
    let next_link = (end < total_items).then(|| query.link(snapshot.id(), query.page + 1));
    let pagination = Pagination {
        page: query.page,
        page_size: query.page_size,
        total_items,
        self_link: query.link(snapshot.id(), query.page),
        next_link: next_link.clone(),
    };
    let body = render_page(
        query.format,
        rows.iter().map(|&position| snapshot.index.get(position)),
        &snapshot.info,
        &pagination,
    );
    PageBody {
        etag: etag_of(&body),
        bytes: Bytes::from(body),
        total_items,
        rows: rows.len() as u64,
        next_link,
    }
}

fn rows_on_page(total_items: u64, page: u64, page_size: u64) -> u64 {
    let start = (page - 1).saturating_mul(page_size);
    total_items.saturating_sub(start).min(page_size)
}

fn page_response(
    request: &IncomingRequest,
    resolved: &ResolvedQuery,
    snapshot: &LoadedSnapshot,
    page: PageBody,
) -> Response {
    let use_gzip = accepts_gzip(request.header(ACCEPT_ENCODING));
    let etag = if use_gzip {
        gzip_etag(&page.etag)
    } else {
        page.etag.clone()
    };

    let not_modified = if_none_match_matches(request.header(IF_NONE_MATCH), &etag);
    let mut response = if not_modified {
        let mut response = Response::new(Bytes::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else if use_gzip {
        let mut response = Response::new(Bytes::from(gzip(&page.bytes)).into());
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Response::new(page.bytes.into())
    };

    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(resolved.query.format.content_type()),
    );
    insert_text(headers, ETAG, &etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    insert_text(headers, SNAPSHOT_HEADER, snapshot.id());
    insert_text(headers, TOTAL_COUNT_HEADER, &page.total_items.to_string());
    if let Some(next) = &page.next_link {
        insert_text(headers, LINK, &format!("<{next}>; rel=\"next\""));
    }
    response
}

pub(crate) fn insert_text<K: warp::http::header::IntoHeaderName>(
    headers: &mut warp::http::HeaderMap,
    name: K,
    value: &str,
) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_on_page_counts_the_last_partial_page() {
        assert_eq!(rows_on_page(120, 1, 50), 50);
        assert_eq!(rows_on_page(120, 3, 50), 20);
        assert_eq!(rows_on_page(120, 4, 50), 0);
        assert_eq!(rows_on_page(120, u64::MAX, 50), 0);
    }
}
