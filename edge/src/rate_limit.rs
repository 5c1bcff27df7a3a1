//! Per-key rate limiting in memory (GCRA, a token bucket without timers) and the rate-limit response headers.
//!
//! A key with a limit of `n` requests per minute may send `n` requests at once, then one more
//! every `60/n` seconds. A rejected request does not use quota. The state lives in this process
//! only: it resets on restart, and each replica of a fleet counts on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use warp::http::header::{HeaderMap, HeaderName, HeaderValue};

/// Name of the quota policy in the `RateLimit-Policy` and `RateLimit` fields.
const POLICY_NAME: &str = "per-key";

/// The window the limits are expressed in.
const WINDOW: Duration = Duration::from_secs(60);

/// Number of tracked keys above which fully replenished entries are dropped.
const PRUNE_THRESHOLD: usize = 10_000;

/// The outcome of one check, with what the headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests per minute of the key.
    pub limit: u32,
    /// Requests the key may still send at once.
    pub remaining: u32,
    /// Whole seconds until the quota is full again; at least 1 while the key is blocked.
    pub reset_seconds: u64,
    /// Whole seconds until the next request is allowed (0 when allowed); at least 1 when rejected.
    pub retry_after_seconds: u64,
}

/// Rate-limit state of every key seen by this process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    limit: u32,
    /// Theoretical arrival time: when the bucket will be full again.
    full_at: Instant,
}

impl RateLimiter {
    /// Creates an empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Counts one request of `key_id` against `limit_per_minute` (at least 1) now.
    pub fn check(&self, key_id: &str, limit_per_minute: u32) -> RateLimitDecision {
        self.check_at(key_id, limit_per_minute, Instant::now())
    }

    /// Counts one request of `key_id` at `now`.
    pub fn check_at(&self, key_id: &str, limit_per_minute: u32, now: Instant) -> RateLimitDecision {
        let limit = limit_per_minute.max(1);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if buckets.len() > PRUNE_THRESHOLD {
            buckets.retain(|_, bucket| bucket.full_at > now);
        }
        let bucket = buckets.entry(key_id.to_owned()).or_insert(Bucket {
            limit,
            full_at: now,
        });

        if bucket.limit != limit {
            *bucket = Bucket {
                limit,
                full_at: now,
            };
        }

        let interval = WINDOW / limit;
        let tolerance = interval * (limit - 1);
        let debt = bucket.full_at.saturating_duration_since(now);
        if debt > tolerance {
            let wait = debt - tolerance;
            return RateLimitDecision {
                allowed: false,
                limit,
                remaining: 0,
                reset_seconds: whole_seconds_at_least_one(debt),
                retry_after_seconds: whole_seconds_at_least_one(wait),
            };
        }

        let debt = debt + interval;
        bucket.full_at = now + debt;
        let used = debt.as_nanos().div_ceil(interval.as_nanos()) as u32;
        RateLimitDecision {
            allowed: true,
            limit,
            remaining: limit.saturating_sub(used),
            reset_seconds: debt.as_nanos().div_ceil(1_000_000_000) as u64,
            retry_after_seconds: 0,
        }
    }
}

fn whole_seconds_at_least_one(duration: Duration) -> u64 {
    (duration.as_nanos().div_ceil(1_000_000_000) as u64).max(1)
}

impl RateLimitDecision {
    /// Adds `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and the IETF draft's
    /// `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-09 syntax).
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("ratelimit-limit", self.limit.to_string());
        set("ratelimit-remaining", self.remaining.to_string());
        set("ratelimit-reset", self.reset_seconds.to_string());
        set(
            "ratelimit-policy",
            format!("\"{POLICY_NAME}\";q={};w={}", self.limit, WINDOW.as_secs()),
        );
        set(
            "ratelimit",
            format!(
                "\"{POLICY_NAME}\";r={};t={}",
                self.remaining, self.reset_seconds
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_beyond_limit_rejected() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        let decisions: Vec<RateLimitDecision> =
            (0..8).map(|_| limiter.check_at("k", 5, now)).collect();
        let allowed = decisions.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, 5);
        assert!(decisions[..5].iter().all(|d| d.allowed));
        assert_eq!(
            decisions[..5]
                .iter()
                .map(|d| d.remaining)
                .collect::<Vec<_>>(),
            [4, 3, 2, 1, 0]
        );
        let rejected = decisions[5];
        assert_eq!(rejected.remaining, 0);
        assert_eq!(rejected.retry_after_seconds, 12);
        assert_eq!(rejected.reset_seconds, 60);
    }

    #[test]
    fn rejected_requests_use_no_quota() {
        let limiter = RateLimiter::new();
        let start = Instant::now();
        for _ in 0..2 {
            assert!(limiter.check_at("k", 2, start).allowed);
        }
        for _ in 0..50 {
            assert!(!limiter.check_at("k", 2, start).allowed);
        }
        let after_one_interval = start + Duration::from_secs(30);
        assert!(limiter.check_at("k", 2, after_one_interval).allowed);
        assert!(!limiter.check_at("k", 2, after_one_interval).allowed);
    }

    #[test]
    fn blocked_key_never_reports_zero_reset() {
        let limiter = RateLimiter::new();
        let start = Instant::now();
        assert!(limiter.check_at("k", 1, start).allowed);
        let almost = start + Duration::from_millis(59_999);
        let rejected = limiter.check_at("k", 1, almost);
        assert!(!rejected.allowed);
        assert_eq!(rejected.reset_seconds, 1);
        assert_eq!(rejected.retry_after_seconds, 1);
    }

    #[test]
    fn keys_counted_apart_and_limit_change_resets() {
        let limiter = RateLimiter::new();
        let now = Instant::now();
        assert!(limiter.check_at("a", 1, now).allowed);
        assert!(limiter.check_at("b", 1, now).allowed);
        assert!(!limiter.check_at("a", 1, now).allowed);
        assert!(limiter.check_at("a", 3, now).allowed);
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let decision = RateLimitDecision {
            allowed: true,
            limit: 60,
            remaining: 57,
            reset_seconds: 3,
            retry_after_seconds: 0,
        };
        let mut headers = HeaderMap::new();
        decision.apply_headers(&mut headers);
        assert_eq!(headers["ratelimit-limit"], "60");
        assert_eq!(headers["ratelimit-remaining"], "57");
        assert_eq!(headers["ratelimit-reset"], "3");
        assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=60;w=60");
        assert_eq!(headers["ratelimit"], "\"per-key\";r=57;t=3");
    }
}
