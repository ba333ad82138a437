//! A real OTLP/HTTP receiver for tests: what the `saga` processes export, decoded.
//!
//! It accepts `POST /v1/traces` and `POST /v1/metrics` with `application/x-protobuf` bodies,
//! decodes them with the generated OpenTelemetry protobuf types (the same ones a collector
//! uses) and keeps the spans and the metric points for assertions. [`tree`] draws a trace as
//! an indented tree of span names, without ids, for snapshots.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_testkit::Error> {
//! let receiver = saga_testkit::OtlpReceiver::start().await?;
//! // Give the processes OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint(), run them, then:
//! let spans = receiver.spans();
//! # Ok(()) }
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// One exported span, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// `service.name` of the process that exported it.
    pub service: String,
    /// Lower-case hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// `internal`, `server`, `client`, `producer` or `consumer`.
    pub kind: &'static str,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Attribute values rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// `Some(description)` when the status is Error.
    pub error: Option<String>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One exported metric data point (sums and gauges).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub service: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<Span>,
    points: Vec<Point>,
}

/// An OTLP/HTTP receiver on a free loopback port, stopped on drop.
pub struct OtlpReceiver {
    endpoint: String,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts the receiver on the current tokio runtime.
    pub async fn start() -> crate::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(OtlpReceiver {
            endpoint,
            received,
            server,
        })
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        lock(&self.received).spans.clone()
    }

    /// The spans of trace `trace_id`.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        lock(&self.received)
            .spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Every metric point received so far, oldest first.
    pub fn points(&self) -> Vec<Point> {
        lock(&self.received).points.clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(received: &Mutex<Received>) -> MutexGuard<'_, Received> {
    // A panicking test thread must not hide what was received.
    received
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Shared = State<Arc<Mutex<Received>>>;

/// The OTLP success answer: an empty export response message.
fn accepted() -> (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    Vec<u8>,
) {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/x-protobuf")],
        Vec::new(),
    )
}

async fn traces(State(received): Shared, body: Bytes) -> impl axum::response::IntoResponse {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return Err((StatusCode::BAD_REQUEST, e.to_string())),
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref().map(|r| &r.attributes));
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let error = span
                    .status
                    .as_ref()
                    .filter(|s| s.code == 2)
                    .map(|s| s.message.clone());
                spans.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    kind: match span.kind {
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "internal",
                    },
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: attributes(&span.attributes),
                    error,
                });
            }
        }
    }
    lock(&received).spans.extend(spans);
    Ok(accepted())
}

async fn metrics(State(received): Shared, body: Bytes) -> impl axum::response::IntoResponse {
    let request = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return Err((StatusCode::BAD_REQUEST, e.to_string())),
    };
    let mut points = Vec::new();
    for resource_metrics in request.resource_metrics {
        let service = service_name(resource_metrics.resource.as_ref().map(|r| &r.attributes));
        for scope in resource_metrics.scope_metrics {
            for m in scope.metrics {
                let data_points = match m.data {
                    Some(metric::Data::Sum(sum)) => sum.data_points,
                    Some(metric::Data::Gauge(gauge)) => gauge.data_points,
                    _ => continue,
                };
                for point in data_points {
                    let value = match point.value {
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        None => continue,
                    };
                    points.push(Point {
                        service: service.clone(),
                        name: m.name.clone(),
                        attributes: attributes(&point.attributes),
                        value,
                    });
                }
            }
        }
    }
    lock(&received).points.extend(points);
    Ok(accepted())
}

fn service_name(attrs: Option<&Vec<KeyValue>>) -> String {
    attrs
        .map(|a| attributes(a))
        .and_then(|mut a| a.remove("service.name"))
        .unwrap_or_default()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The trace `spans` as an indented tree, one span a line: `name [service]`, the kind
/// when it is not internal, `outcome=` when the span has a `saga.outcome`, and `ERROR: …`
/// for an error status. Children follow their parent in start order. Ids and times are left
/// out, so two runs of the same saga draw the same tree. A span whose parent is not among
/// `spans` is drawn at the top under `(missing parent)`.
pub fn tree(spans: &[Span]) -> String {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: BTreeMap<Option<&str>, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        let parent = span.parent_span_id.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (a.start_unix_nano, &a.name).cmp(&(b.start_unix_nano, &b.name)));
    }
    let mut out = String::new();
    for root in children.get(&None).cloned().unwrap_or_default() {
        if root.parent_span_id.is_some() {
            out.push_str("(missing parent)\n");
            draw(&mut out, root, &children, 1);
        } else {
            draw(&mut out, root, &children, 0);
        }
    }
    out
}

fn draw(
    out: &mut String,
    span: &Span,
    children: &BTreeMap<Option<&str>, Vec<&Span>>,
    depth: usize,
) {
    let _ = write!(
        out,
        "{}{} [{}]",
        "  ".repeat(depth),
        span.name,
        span.service
    );
    if span.kind != "internal" {
        let _ = write!(out, " {}", span.kind);
    }
    if let Some(outcome) = span.attribute("saga.outcome") {
        let _ = write!(out, " outcome={outcome}");
    }
    if let Some(error) = &span.error {
        let _ = write!(out, " ERROR: {error}");
    }
    out.push('\n');
    for child in children
        .get(&Some(span.span_id.as_str()))
        .into_iter()
        .flatten()
    {
        draw(out, child, children, depth + 1);
    }
}
