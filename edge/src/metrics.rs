//! Prometheus metrics of the edge, served as text on `/metrics`.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use warp::http::StatusCode;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Routes used as label values; any other path is counted as `other`, which keeps the label set bounded.
const ROUTES: [&str; 5] = [
    "/feeds/indicators",
    "/feeds/indicators/download",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Every metric of one edge process, in its own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Audit records waiting to be written (queued plus in the writer's current batch).
    pub audit_queue_depth: IntGauge,
    /// Audit records in spool files on local disk, waiting to be replayed.
    pub audit_spooled_records: IntGauge,
    /// Audit records written to the database.
    pub audit_records_written: IntCounter,
    /// Failed attempts to write a batch of audit records.
    pub audit_write_failures: IntCounter,
    snapshot_info: IntGaugeVec,
    /// Seconds since the served snapshot was generated.
    pub snapshot_age_seconds: Gauge,
    /// Requests rejected with 429.
    pub rate_limited_requests: IntCounter,
    /// Failed reads of `latest.json` or of a new snapshot.
    pub snapshot_load_failures: IntCounter,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "partner_feed_http_requests_total",
                "HTTP requests by route and status code",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "partner_feed_http_request_duration_seconds",
                "Time to produce the response head, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let metrics = Metrics {
            audit_queue_depth: gauge(
                "partner_feed_audit_queue_depth",
                "Audit records waiting to be written to the database",
            ),
            audit_spooled_records: gauge(
                "partner_feed_audit_spooled_records",
                "Audit records in spool files on local disk, waiting to be replayed",
            ),
            audit_records_written: counter(
                "partner_feed_audit_records_written_total",
                "Audit records written to the database",
            ),
            audit_write_failures: counter(
                "partner_feed_audit_write_failures_total",
                "Failed attempts to write a batch of audit records",
            ),
            snapshot_info: IntGaugeVec::new(
                Opts::new(
                    "partner_feed_snapshot_info",
                    "The snapshot served as latest (value 1, id in the label)",
                ),
                &["snapshot_id"],
            )
            .expect("valid metric"),
            snapshot_age_seconds: Gauge::new(
                "partner_feed_snapshot_age_seconds",
                "Seconds since the served snapshot was generated",
            )
            .expect("valid metric"),
            rate_limited_requests: counter(
                "partner_feed_rate_limited_requests_total",
                "Requests rejected with 429 because a key exceeded its rate limit",
            ),
            snapshot_load_failures: counter(
                "partner_feed_snapshot_load_failures_total",
                "Failed reads of latest.json or of a new snapshot",
            ),
            registry,
            requests,
            latency,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.latency.clone()),
            Box::new(self.audit_queue_depth.clone()),
            Box::new(self.audit_spooled_records.clone()),
            Box::new(self.audit_records_written.clone()),
            Box::new(self.audit_write_failures.clone()),
            Box::new(self.snapshot_info.clone()),
            Box::new(self.snapshot_age_seconds.clone()),
            Box::new(self.rate_limited_requests.clone()),
            Box::new(self.snapshot_load_failures.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// Counts one finished request.
    pub fn observe_request(&self, path: &str, status: StatusCode, elapsed: Duration) {
        let route = ROUTES
            .iter()
            .find(|route| **route == path)
            .copied()
            .unwrap_or("other");
        self.requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Records which snapshot is served as latest.
    pub fn set_snapshot(&self, snapshot_id: &str) {
        self.snapshot_info.reset();
        self.snapshot_info.with_label_values(&[snapshot_id]).set(1);
    }

    /// Encodes every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding metrics to memory does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        let metrics = Metrics::new();
        metrics.observe_request(
            "/feeds/indicators",
            StatusCode::OK,
            Duration::from_millis(3),
        );
        metrics.observe_request("/wp-admin", StatusCode::NOT_FOUND, Duration::from_millis(1));
        metrics.observe_request(
            "/etc/passwd",
            StatusCode::NOT_FOUND,
            Duration::from_millis(1),
        );
        metrics.set_snapshot("s2");
        let text = metrics.render();
        assert!(text.contains(
            "partner_feed_http_requests_total{route=\"/feeds/indicators\",status=\"200\"} 1"
        ));
        assert!(text.contains("partner_feed_http_requests_total{route=\"other\",status=\"404\"} 2"));
        assert!(text.contains("partner_feed_snapshot_info{snapshot_id=\"s2\"} 1"));
        assert!(!text.contains("wp-admin"));
    }
}
