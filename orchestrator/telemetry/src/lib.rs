//! Traces, metrics and logs for every saga process (orchestrator and participants).
//!
//! - [`install`] sets a process up from [`Settings`] (flags and the standard `OTEL_*`
//!   variables): an OpenTelemetry tracer provider exporting over OTLP when an endpoint is set,
//!   a meter provider that Prometheus scrapes (and, optionally, that exports over OTLP), the
//!   W3C trace-context propagator, and the `tracing` subscriber that writes human-readable or
//!   JSON logs (with trace and span ids) filtered by `RUST_LOG`. The returned [`Telemetry`]
//!   flushes everything on [`Telemetry::shutdown`].
//! - [`propagation`]: `traceparent`/`tracestate` in and out of NATS message headers.
//! - [`saga`]: one trace per saga that outlives processes: [`saga::SagaTrace`] is the saga's
//!   root context as stored with the saga, and spans that end long after they began (a step
//!   attempt, the saga itself) are recorded with their real start time and deterministic ids.
//! - [`metrics`]: the meter every process records on, and the Prometheus text of it.
//! - [`messaging`]: the `process` and `publish` spans of every message over NATS.
//!
//! With no OTLP endpoint and text logs, no tracer is installed at all: spans of the saga code
//! are disabled `tracing` callsites, propagation injects nothing and no trace context is
//! stored, so the hot path pays next to nothing. Metrics are always on (counters are atomic
//! adds) because `/metrics` always answers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_telemetry::Error> {
//! use saga_telemetry::{LogFormat, Settings};
//!
//! let settings = Settings {
//!     otlp_endpoint: Some("http://127.0.0.1:4318".into()),
//!     log_format: LogFormat::Json,
//!     ..Settings::new("saga-orchestrator")
//! };
//! let telemetry = saga_telemetry::install(&settings)?;
//! // … run the server …
//! telemetry.shutdown().await;
//! # Ok(()) }
//! ```

mod ids;
mod install;
pub mod messaging;
pub mod metrics;
pub mod propagation;
pub mod saga;
pub mod settings;

pub use install::{Error, Telemetry, install, tracing_enabled};
pub use settings::{LogFormat, Protocol, Settings};

/// The `tracing` target prefix of the spans that make up a saga's trace; the OpenTelemetry
/// layer only turns spans of these crates into OpenTelemetry spans.
pub const SPAN_TARGETS: [&str; 3] = ["saga_orchestrator", "saga_participants", "saga_telemetry"];
