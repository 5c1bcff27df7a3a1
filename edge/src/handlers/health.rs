//! `/healthz`, `/readyz` and `/metrics`: no key needed, no partner data shown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::state::AppState;

/// Maximum wait for the database during a readiness check.
const READINESS_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Handles `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Result<Response, Infallible> {
    Ok(json_response(StatusCode::OK, json!({"status": "ok"})))
}

/// Handles `GET /readyz`: ready when a snapshot is loaded and the database responds.
pub(crate) async fn readyz(state: Arc<AppState>) -> Result<Response, Infallible> {
    let snapshot = state.catalog.current();
    let database = matches!(
        tokio::time::timeout(READINESS_DB_TIMEOUT, state.db.ping()).await,
        Ok(Ok(()))
    );
    let ready = snapshot.is_some() && database;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {"snapshotLoaded": snapshot.is_some(), "database": database},
        "snapshotId": snapshot.as_ref().map(|snapshot| snapshot.id().to_owned()),
    });
    Ok(json_response(status, body))
}

/// Handles `GET /metrics`: every metric in the Prometheus text format.
pub(crate) async fn metrics(state: Arc<AppState>) -> Result<Response, Infallible> {
    let metrics = &state.metrics;
    if let Some(snapshot) = state.catalog.current() {
        let age = Utc::now() - snapshot.info.generated_at;
        metrics
            .snapshot_age_seconds
            .set(age.num_milliseconds() as f64 / 1000.0);
    }
    // The writer sets the depth when it takes a batch; the queue may have grown since.
    let queued = state.audit.queued() as i64;
    if metrics.audit_queue_depth.get() < queued {
        metrics.audit_queue_depth.set(queued);
    }
    let mut response = Response::new(metrics.render().into());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
