//! Request handlers. Feed handlers share one frame: authorize, serve, then add rate-limit headers and queue the audit record.

mod download;
mod health;
mod page;

pub(crate) use download::download;
pub(crate) use health::{healthz, metrics, readyz};
pub(crate) use page::feed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::Value;
use warp::http::header::{HeaderMap, USER_AGENT};
use warp::http::Method;
use warp::reply::Response;

use partner_feed_shared::db::{AuditRecord, PartnerKey};
use partner_feed_shared::keys::RawKey;

use crate::auth::{check_key, presented_key, AuthenticatedKey};
use crate::client_ip::client_ip;
use crate::error::ApiError;
use crate::query::{parse_pairs, raw_audit_json};
use crate::rate_limit::RateLimitDecision;
use crate::snapshots::{LoadedSnapshot, PinnedError};
use crate::state::AppState;

/// Longest `User-Agent` stored in the audit, in characters.
const MAX_USER_AGENT_CHARS: usize = 512;

/// The parts of a request the feed handlers read.
#[derive(Debug)]
pub(crate) struct IncomingRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) peer: Option<SocketAddr>,
}

impl IncomingRequest {
    fn header(&self, name: impl warp::http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Facts gathered while handling a feed request, for the audit record and the headers.
#[derive(Debug)]
struct FeedContext {
    started: Instant,
    received_at: DateTime<Utc>,
    presented: Option<RawKey>,
    stored_key: Option<Arc<PartnerKey>>,
    rate_limit: Option<RateLimitDecision>,
    query_params: Value,
    snapshot_id: Option<String>,
    result_count: Option<i64>,
}

impl FeedContext {
    fn start() -> FeedContext {
        FeedContext {
            started: Instant::now(),
            received_at: Utc::now(),
            presented: None,
            stored_key: None,
            rate_limit: None,
            query_params: Value::Object(Default::default()),
            snapshot_id: None,
            result_count: None,
        }
    }

    fn served_from(&mut self, snapshot: &LoadedSnapshot) {
        self.snapshot_id = Some(snapshot.id().to_owned());
    }
}

/// Records the query's `parameters` for the audit (never the key), then checks method, key,
/// rate limit and the feed switch, in that order. Returns the query's pairs and the key.
async fn authorize(
    state: &AppState,
    request: &IncomingRequest,
    context: &mut FeedContext,
    parameters: &[&str],
) -> Result<(Vec<(String, String)>, AuthenticatedKey), ApiError> {
    let pairs = parse_pairs(&request.query);
    let presented = presented_key(&request.headers);
    context.query_params = raw_audit_json(
        &pairs,
        parameters,
        presented.as_ref().map(|key| key.expose()),
    );
    if request.method != Method::GET && request.method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed {
            method: request.method.to_string(),
        });
    }
    context.presented = presented;
    let raw = context.presented.as_ref().ok_or(ApiError::MissingKey)?;
    let feed = &state.settings.partner_feed;
    let stored = state.keys.lookup(raw).await?.ok_or(ApiError::UnknownKey)?;
    context.stored_key = Some(Arc::clone(&stored));
    let key = check_key(stored, feed.rate_limit_per_minute, context.received_at)?;
    let decision = state
        .limiter
        .check(&key.key.key_id, key.rate_limit_per_minute);
    context.rate_limit = Some(decision);
    if !decision.allowed {
        state.metrics.rate_limited_requests.inc();
        return Err(ApiError::RateLimited {
            limit: decision.limit,
            retry_after_seconds: decision.retry_after_seconds,
        });
    }
    state.key_usage.note(&key.key.key_id, context.received_at);
    if !feed.enabled {
        return Err(ApiError::FeedDisabled);
    }
    Ok((pairs, key))
}

/// Returns the snapshot to serve: the pinned one when `snapshot` is given, else the latest.
async fn choose_snapshot(
    state: &AppState,
    pinned: Option<&str>,
) -> Result<Arc<LoadedSnapshot>, ApiError> {
    let Some(id) = pinned else {
        return state.catalog.current().ok_or(ApiError::NoSnapshot);
    };
    match state.catalog.pinned(id).await {
        Ok(snapshot) => Ok(snapshot),
        Err(PinnedError::Gone(id)) => Err(ApiError::SnapshotGone { snapshot_id: id }),
        Err(PinnedError::Unavailable(error)) => {
            tracing::error!(snapshot_id = %id, error = %crate::audit::error_chain(&error), "failed to load a pinned snapshot");
            Err(ApiError::Unavailable {
                dependency: "object storage",
            })
        }
    }
}

/// Turns the outcome into the response, adds the rate-limit headers and queues the audit record.
async fn finish(
    state: &AppState,
    request: &IncomingRequest,
    context: FeedContext,
    outcome: Result<Response, ApiError>,
) -> Response {
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(code = error.code(), message = %error, "feed request failed");
            }
            error.into_response()
        }
    };
    if let Some(decision) = &context.rate_limit {
        decision.apply_headers(response.headers_mut());
    }
    let latency_ms = context.started.elapsed().as_secs_f64() * 1000.0;
    let record = audit_record(
        state,
        request,
        &context,
        response.status().as_u16(),
        latency_ms,
    );
    tracing::info!(
        endpoint = %record.endpoint,
        status = record.response_code,
        key_prefix = record.key_prefix.as_deref().unwrap_or("-"),
        snapshot_id = record.snapshot_id.as_deref().unwrap_or("-"),
        result_count = record.result_count.unwrap_or(0),
        latency_ms = format!("{latency_ms:.2}"),
        "feed request"
    );
    state.audit.record(record).await;
    response
}

fn audit_record(
    state: &AppState,
    request: &IncomingRequest,
    context: &FeedContext,
    status: u16,
    latency_ms: f64,
) -> AuditRecord {
    let key = context.stored_key.as_deref();
    let forwarded_for = request.header("x-forwarded-for");
    let ip = client_ip(
        request.peer.map(|peer| peer.ip()),
        forwarded_for,
        &state.settings.edge.trusted_proxies,
    );
    AuditRecord {
        audit_id: uuid::Uuid::new_v4().to_string(),
        key_id: key.map(|key| key.key_id.clone()),
        partner_name: key.map(|key| key.partner_name.clone()),
        key_prefix: context.presented.as_ref().map(RawKey::prefix),
        endpoint: request.path.clone(),
        method: request.method.to_string(),
        query_params: context.query_params.clone(),
        result_count: context.result_count,
        response_code: i32::from(status),
        ip_address: ip.map(|ip| ip.to_string()),
        user_agent: request
            .header(USER_AGENT)
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect()),
        snapshot_id: context.snapshot_id.clone(),
        latency_ms,
        created_at: context.received_at,
    }
}
