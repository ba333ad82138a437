//! The meter every saga process records on, and its Prometheus text for `/metrics`.
//!
//! Instruments are OpenTelemetry instruments on [`meter`]; the Prometheus exporter turns
//! `saga.started` (a counter) into `saga_started_total`, and a histogram with unit `s` into
//! `…_seconds`. The same instruments are exported over OTLP when that is asked for.
//!
//! ```
//! let started = saga_telemetry::metrics::meter().u64_counter("saga.started").build();
//! started.add(1, &[opentelemetry::KeyValue::new("saga", "place_order")]);
//! // Before `install`, the meter records nothing and the text is empty.
//! assert!(saga_telemetry::metrics::render().is_empty());
//! ```

use opentelemetry::metrics::Meter;
use prometheus::Encoder;

/// Bucket bounds (seconds) of the latency histograms: from 5 ms to 5 minutes.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The meter of the saga processes.
pub fn meter() -> Meter {
    opentelemetry::global::meter("saga")
}

/// Every metric recorded so far, in the Prometheus text format; empty before
/// [`crate::install`].
pub fn render() -> String {
    let Some(registry) = crate::install::prometheus_registry() else {
        return String::new();
    };
    let mut text = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut text) {
        tracing::warn!(error = %e, "cannot encode the metrics");
    }
    String::from_utf8(text).unwrap_or_default()
}
