//! Errors of the edge: what a client sees (`ApiError`, always a JSON body) and what stops the service (`EdgeError`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Rejection;

use partner_feed_shared::Tlp;

/// Realm named in `WWW-Authenticate` challenges.
const AUTH_REALM: &str = "partner-feed";

/// Seconds a client is asked to wait before retrying a 503.
const UNAVAILABLE_RETRY_SECONDS: u64 = 5;

/// A rejected request, turned into `{"error": {"code", "message"}}` with its status code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Neither `X-Partner-API-Key` nor `Authorization: Bearer` was sent.
    #[error(
        "missing API key: send it in the X-Partner-API-Key header or as Authorization: Bearer"
    )]
    MissingKey,
    /// The presented key matches no stored key.
    #[error("invalid API key")]
    UnknownKey,
    /// The key was revoked (`is_active = false`).
    #[error("API key {prefix}… is revoked")]
    InactiveKey {
        /// First eight characters of the key.
        prefix: String,
    },
    /// The key's `expires_at` has passed.
    #[error("API key {prefix}… expired at {}", .expired_at.to_rfc3339_opts(SecondsFormat::Secs, true))]
    ExpiredKey {
        /// First eight characters of the key.
        prefix: String,
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The key's stored scopes cannot be parsed, so nothing can be served safely.
    #[error("API key {prefix}… has invalid scopes; ask the feed operator to correct them")]
    InvalidKeyScopes {
        /// First eight characters of the key.
        prefix: String,
    },
    /// The key used up its requests for now.
    #[error("rate limit of {limit} requests per minute exceeded; retry after {retry_after_seconds} seconds")]
    RateLimited {
        /// Requests per minute allowed for the key.
        limit: u32,
        /// Whole seconds until the next request is allowed.
        retry_after_seconds: u64,
    },
    /// A query parameter has an invalid value.
    #[error("invalid query parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name as sent.
        name: String,
        /// Reason the value is invalid.
        reason: String,
    },
    /// Query parameters this route does not know.
    #[error("unknown query parameter{}: {}; expected {expected}", if .names.len() == 1 { "" } else { "s" }, .names.join(", "))]
    UnknownParameters {
        /// The unknown names, in request order.
        names: Vec<String>,
        /// The parameters the route accepts.
        expected: String,
    },
    /// A parameter given more than once.
    #[error("invalid query parameter {name}: given more than once")]
    DuplicateParameter {
        /// Parameter name.
        name: String,
    },
    /// The requested `tlp` is above what the key may receive.
    #[error("tlp {requested} is above this key's scope ({allowed})")]
    TlpOutOfScope {
        /// Level requested.
        requested: Tlp,
        /// Highest level the key may receive.
        allowed: Tlp,
    },
    /// The requested category is not among the key's categories.
    #[error("category {category:?} is outside this key's scope")]
    CategoryOutOfScope {
        /// Category requested.
        category: String,
    },
    /// The full download contains more than the key may receive.
    #[error("the download holds {tlp} indicators of every category, which is more than this key's scope allows; page through GET /feeds/indicators instead")]
    DownloadOutOfScope {
        /// TLP of the download.
        tlp: Tlp,
    },
    /// `partner_feed.enabled` is false.
    #[error("the partner feed is disabled")]
    FeedDisabled,
    /// No snapshot has been published yet.
    #[error("no snapshot has been published yet; retry later")]
    NoSnapshot,
    /// The pinned snapshot was deleted.
    #[error(
        "snapshot {snapshot_id} is no longer kept; start again without the snapshot parameter"
    )]
    SnapshotGone {
        /// The pinned snapshot id.
        snapshot_id: String,
    },
    /// A dependency (database or object storage) failed; the request may succeed later.
    #[error("the feed is temporarily unavailable ({dependency}); retry later")]
    Unavailable {
        /// `database` or `object storage`.
        dependency: &'static str,
    },
    /// The route exists but not for this method.
    #[error("method {method} is not allowed here; use GET")]
    MethodNotAllowed {
        /// Method of the request.
        method: String,
    },
    /// No route matches the path.
    #[error("no such route")]
    NotFound,
    /// A request the edge could not parse at the HTTP level.
    #[error("bad request: {reason}")]
    BadRequest {
        /// Description of the problem.
        reason: String,
    },
    /// An unexpected failure. The log contains the cause.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Returns the HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey | ApiError::UnknownKey => StatusCode::UNAUTHORIZED,
            ApiError::InactiveKey { .. }
            | ApiError::ExpiredKey { .. }
            | ApiError::InvalidKeyScopes { .. }
            | ApiError::TlpOutOfScope { .. }
            | ApiError::CategoryOutOfScope { .. }
            | ApiError::DownloadOutOfScope { .. } => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidParameter { .. }
            | ApiError::UnknownParameters { .. }
            | ApiError::DuplicateParameter { .. }
            | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::FeedDisabled | ApiError::NoSnapshot | ApiError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::SnapshotGone { .. } => StatusCode::GONE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns the stable machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingKey => "missing_api_key",
            ApiError::UnknownKey => "invalid_api_key",
            ApiError::InactiveKey { .. } => "api_key_revoked",
            ApiError::ExpiredKey { .. } => "api_key_expired",
            ApiError::InvalidKeyScopes { .. } => "api_key_invalid_scopes",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::InvalidParameter { .. }
            | ApiError::UnknownParameters { .. }
            | ApiError::DuplicateParameter { .. } => "invalid_parameter",
            ApiError::TlpOutOfScope { .. }
            | ApiError::CategoryOutOfScope { .. }
            | ApiError::DownloadOutOfScope { .. } => "forbidden_scope",
            ApiError::FeedDisabled => "feed_disabled",
            ApiError::NoSnapshot => "no_snapshot",
            ApiError::SnapshotGone { .. } => "snapshot_gone",
            ApiError::Unavailable { .. } => "service_unavailable",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Internal => "internal_error",
        }
    }

    /// Builds the JSON error response, with `WWW-Authenticate` on 401 and `Retry-After` on 429 and 503.
    pub fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = Response::new(body.to_string().into());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            ApiError::MissingKey => {
                let challenge = format!("Bearer realm=\"{AUTH_REALM}\"");
                headers.insert(WWW_AUTHENTICATE, header_value(&challenge));
            }
            ApiError::UnknownKey => {
                let challenge = format!("Bearer realm=\"{AUTH_REALM}\", error=\"invalid_token\"");
                headers.insert(WWW_AUTHENTICATE, header_value(&challenge));
            }
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => {
                headers.insert(
                    RETRY_AFTER,
                    retry_after_seconds.to_string().parse().unwrap(),
                );
            }
            ApiError::NoSnapshot | ApiError::Unavailable { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(UNAVAILABLE_RETRY_SECONDS));
            }
            _ => {}
        }
        response
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Turns every warp rejection into the JSON error body; the feed handlers build their own errors the same way.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::NotFound
    } else if let Some(error) = rejection.find::<ApiError>() {
        error.clone()
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed {
            method: "this method".to_owned(),
        }
    } else if let Some(error) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest {
            reason: error.to_string(),
        }
    } else if let Some(error) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest {
            reason: error.to_string(),
        }
    } else {
        tracing::error!(rejection = ?rejection, "unhandled rejection");
        ApiError::Internal
    };
    Ok(error.into_response())
}

impl warp::reject::Reject for ApiError {}

/// Error that prevents the edge from starting or stopping cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// The listener could not be bound.
    #[error("failed to listen on {address}")]
    Bind {
        /// Configured `edge.bind`.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The audit spool folder could not be created or read.
    #[error("failed to use the audit spool folder {path}")]
    Spool {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A background task panicked or was aborted.
    #[error("the {task} task failed")]
    Task {
        /// Which task.
        task: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_has_challenge() {
        let response = ApiError::MissingKey.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"partner-feed\""
        );
    }

    #[test]
    fn rate_limited_has_whole_second_retry_after() {
        let response = ApiError::RateLimited {
            limit: 5,
            retry_after_seconds: 12,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "12");
    }

    #[test]
    fn unknown_parameters_are_named_in_the_message() {
        let error = ApiError::UnknownParameters {
            names: vec!["foo".into(), "bar".into()],
            expected: "page".into(),
        };
        assert_eq!(
            error.to_string(),
            "unknown query parameters: foo, bar; expected page"
        );
    }
}
