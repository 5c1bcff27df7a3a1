//! The route table: one filter per route, state injected by `with_state`, one `recover` for every rejection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::http::header::HeaderMap;
use warp::http::Method;
use warp::reply::Response;
use warp::Filter;

use crate::error::recover;
use crate::handlers::{self, IncomingRequest};
use crate::state::AppState;

/// Builds every route of the edge, recording request metrics for each response.
pub(crate) fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let metrics = state.metrics.clone();
    feed(Arc::clone(&state))
        .or(download(Arc::clone(&state)))
        .unify()
        .or(healthz())
        .unify()
        .or(readyz(Arc::clone(&state)))
        .unify()
        .or(metrics_route(state))
        .unify()
        .recover(recover)
        .unify()
        .with(warp::log::custom(move |info| {
            metrics.observe_request(info.path(), info.status(), info.elapsed())
        }))
}

/// `GET /feeds/indicators` (any method reaches the handler, which audits and rejects non-GET).
fn feed(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("feeds" / "indicators")
        .and(with_state(state))
        .and(incoming())
        .and_then(handlers::feed)
}

/// `GET /feeds/indicators/download?fmt=json|csv|stix`
fn download(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("feeds" / "indicators" / "download")
        .and(with_state(state))
        .and(incoming())
        .and_then(handlers::download)
}

/// `GET /healthz`
fn healthz() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and_then(handlers::healthz)
}

/// `GET /readyz`
fn readyz(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .and_then(handlers::readyz)
}

/// `GET /metrics`
fn metrics_route(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .and_then(handlers::metrics)
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&state))
}

/// Collects the parts of a request the feed handlers read; a missing query string reads as empty.
fn incoming() -> impl Filter<Extract = (IncomingRequest,), Error = Infallible> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .map(
            |method: Method,
             path: FullPath,
             query: String,
             headers: HeaderMap,
             peer: Option<SocketAddr>| IncomingRequest {
                method,
                path: path.as_str().to_owned(),
                query,
                headers,
                peer,
            },
        )
}
