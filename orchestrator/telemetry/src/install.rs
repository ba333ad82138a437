//! Setting a process up: providers, propagator and the `tracing` subscriber.
//!
//! ```text
//! tracing spans/events ─┬─ log layer (text or JSON, RUST_LOG) ─────────────▶ stderr
//!                       └─ OpenTelemetry layer (saga_* spans) ─▶ tracer ─▶ OTLP batch export
//! saga::SagaTrace (spans recorded after the fact) ────────────────▶ tracer ─┘
//! metrics::meter() ─▶ meter provider ─┬─ Prometheus registry ─▶ /metrics
//!                                     └─ OTLP periodic export (optional)
//! ```
//!
//! A tracer exists when an OTLP endpoint is set (spans are exported) or logs are JSON (so log
//! lines carry the trace and span ids even without a backend). Without either, the
//! OpenTelemetry layer is not installed and the saga spans cost a disabled callsite check.

use crate::settings::{LogFormat, Protocol, Settings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Why telemetry could not be set up. The process should not start half-observed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid RUST_LOG filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error(
        "unknown trace sampler `{0}`: expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
    )]
    Sampler(String),
    #[error("the trace sampler argument `{0}` is not a ratio between 0 and 1")]
    SamplerArg(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP over gRPC needs a build with the `otlp-grpc` feature; use http/protobuf")]
    GrpcNotBuilt,
    #[error("cannot build the Prometheus exporter: {0}")]
    Prometheus(#[from] opentelemetry_sdk::error::OTelSdkError),
    #[error("telemetry is already installed in this process")]
    AlreadyInstalled,
}

/// What [`crate::saga`] needs to record spans itself.
pub(crate) struct TracingState {
    pub tracer: SdkTracer,
    pub sampler: Sampler,
}

static TRACING: OnceLock<TracingState> = OnceLock::new();
static PROMETHEUS: OnceLock<prometheus::Registry> = OnceLock::new();

pub(crate) fn tracing_state() -> Option<&'static TracingState> {
    TRACING.get()
}

pub(crate) fn prometheus_registry() -> Option<&'static prometheus::Registry> {
    PROMETHEUS.get()
}

/// Whether this process has a tracer: spans are recorded and contexts propagated.
pub fn tracing_enabled() -> bool {
    TRACING.get().is_some()
}

/// The installed providers; [`Telemetry::shutdown`] flushes what is still buffered.
#[must_use = "call shutdown() before exiting, or buffered spans are lost"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: SdkMeterProvider,
}

/// How long shutdown may take to flush spans and metrics.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Exports the spans and metrics still buffered, then stops the exporters. The blocking
    /// flush runs off the async workers and gives up after a few seconds: an unreachable
    /// receiver must not hold the process.
    pub async fn shutdown(self) {
        let flush = tokio::task::spawn_blocking(move || {
            if let Some(tracer) = &self.tracer
                && let Err(e) = tracer.shutdown_with_timeout(FLUSH_DEADLINE)
            {
                eprintln!("telemetry: flushing spans failed: {e}");
            }
            if let Err(e) = self.meter.shutdown_with_timeout(FLUSH_DEADLINE) {
                eprintln!("telemetry: flushing metrics failed: {e}");
            }
        });
        let _ = flush.await;
    }
}

/// Sets up this process's telemetry (see the module docs). Call once, early in `main`.
pub fn install(settings: &Settings) -> Result<Telemetry, Error> {
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let tracing_on = settings.otlp_endpoint.is_some() || settings.log_format == LogFormat::Json;
    let tracer = if tracing_on {
        Some(tracer_provider(settings, resource.clone())?)
    } else {
        None
    };
    let meter = meter_provider(settings, resource)?;

    let log_filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(&settings.default_log_filter)?,
    };
    // The log layer also sees the saga spans whatever RUST_LOG says, so a line logged inside
    // one carries its trace and span ids (JSON) or its name and fields (text).
    let log_filter = log_filter.or(filter_fn(|meta| {
        meta.is_span()
            && crate::SPAN_TARGETS
                .iter()
                .any(|t| meta.target().starts_with(t))
    }));
    let log_layer: Box<dyn Layer<Registry> + Send + Sync> = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colours for a person at a terminal; plain text for a file or a log collector.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => json_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .with_span_list(false)
            .with_opentelemetry_ids(true)
            .with_filter(log_filter)
            .boxed(),
    };
    let otel_layer = tracer.as_ref().map(|(provider, _)| {
        let targets = crate::SPAN_TARGETS
            .iter()
            .fold(Targets::new(), |t, target| {
                t.with_target(*target, tracing::Level::INFO)
            });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("saga"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| Error::AlreadyInstalled)?;

    opentelemetry::global::set_meter_provider(meter.clone());
    let tracer = match tracer {
        Some((provider, sampler)) => {
            opentelemetry::global::set_tracer_provider(provider.clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let state = TracingState {
                tracer: provider.tracer("saga"),
                sampler,
            };
            TRACING.set(state).map_err(|_| Error::AlreadyInstalled)?;
            Some(provider)
        }
        None => None,
    };
    Ok(Telemetry { tracer, meter })
}

/// The tracer provider: the sampler, ids [`crate::saga`] can choose, and a batch OTLP
/// exporter when there is an endpoint.
fn tracer_provider(
    settings: &Settings,
    resource: Resource,
) -> Result<(SdkTracerProvider, Sampler), Error> {
    let sampler = sampler(settings.sampler.as_deref(), settings.sampler_arg.as_deref())?;
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler.clone())
        .with_id_generator(crate::ids::Ids::default());
    if let Some(endpoint) = &settings.otlp_endpoint {
        let exporter = match settings.otlp_protocol {
            Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(signal_url(endpoint, "traces"))
                .build()?,
            Protocol::Grpc => grpc_span_exporter(endpoint)?,
        };
        builder = builder.with_batch_exporter(exporter);
    }
    Ok((builder.build(), sampler))
}

/// The meter provider: always read by Prometheus, exported over OTLP when asked.
fn meter_provider(settings: &Settings, resource: Resource) -> Result<SdkMeterProvider, Error> {
    let registry = prometheus::Registry::new();
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .without_target_info()
        .build()?;
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus);
    if let (true, Some(endpoint)) = (settings.otlp_metrics, &settings.otlp_endpoint) {
        let exporter = match settings.otlp_protocol {
            Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(signal_url(endpoint, "metrics"))
                .build()?,
            Protocol::Grpc => grpc_metric_exporter(endpoint)?,
        };
        builder = builder.with_periodic_exporter(exporter);
    }
    // A second install would have failed on the subscriber already.
    let _ = PROMETHEUS.set(registry);
    Ok(builder.build())
}

/// `{endpoint}/v1/{signal}`, as the OTLP/HTTP specification builds signal URLs from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn signal_url(endpoint: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", endpoint.trim_end_matches('/'))
}

#[cfg(feature = "grpc")]
fn grpc_span_exporter(endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    Ok(opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?)
}

#[cfg(not(feature = "grpc"))]
fn grpc_span_exporter(_endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    Err(Error::GrpcNotBuilt)
}

#[cfg(feature = "grpc")]
fn grpc_metric_exporter(endpoint: &str) -> Result<opentelemetry_otlp::MetricExporter, Error> {
    Ok(opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?)
}

#[cfg(not(feature = "grpc"))]
fn grpc_metric_exporter(_endpoint: &str) -> Result<opentelemetry_otlp::MetricExporter, Error> {
    Err(Error::GrpcNotBuilt)
}

/// The sampler named as in `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`).
fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, Error> {
    let ratio = || -> Result<f64, Error> {
        match arg {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| Error::SamplerArg(a.to_string())),
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(
        match name.map(str::trim).unwrap_or("parentbased_always_on") {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
            "" | "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
            "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
            "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
            other => return Err(Error::Sampler(other.to_string())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_are_named_as_in_the_specification() {
        assert!(matches!(sampler(None, None), Ok(Sampler::ParentBased(_))));
        assert!(matches!(
            sampler(Some("traceidratio"), Some("0.25")),
            Ok(Sampler::TraceIdRatioBased(r)) if r == 0.25
        ));
        assert!(matches!(
            sampler(Some("parentbased_traceidratio"), Some("2")),
            Err(Error::SamplerArg(_))
        ));
        assert!(matches!(
            sampler(Some("sometimes"), None),
            Err(Error::Sampler(_))
        ));
    }

    #[test]
    fn signal_urls_append_the_otlp_path() {
        assert_eq!(
            signal_url("http://127.0.0.1:4318/", "traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://collector:4318", "metrics"),
            "http://collector:4318/v1/metrics"
        );
    }
}
