//! What a process asks of its telemetry: where to export, what to sample, how to log.
//!
//! The command line fills [`Settings`] from flags that fall back on the standard
//! OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`);
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` and
//! `OTEL_METRIC_EXPORT_INTERVAL` are read by the OpenTelemetry SDK itself.
//!
//! ```
//! use saga_telemetry::{LogFormat, Protocol, Settings};
//!
//! let settings = Settings::new("saga-account");
//! assert_eq!(settings.otlp_endpoint, None); // no endpoint: nothing is exported
//! assert_eq!(settings.otlp_protocol, Protocol::HttpProtobuf);
//! assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
//! assert_eq!("grpc".parse::<Protocol>().ok(), Some(Protocol::Grpc));
//! ```

use std::fmt;
use std::str::FromStr;

/// Telemetry settings of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `service.name` of every span and metric (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Base URL of the OTLP receiver, e.g. `http://127.0.0.1:4318` (HTTP) or
    /// `http://127.0.0.1:4317` (gRPC). `None`: nothing is exported.
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Protocol,
    /// Export metrics over OTLP too (they are always served as Prometheus text).
    pub otlp_metrics: bool,
    /// An `OTEL_TRACES_SAMPLER` value; `None` samples every saga (`parentbased_always_on`).
    pub sampler: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `*traceidratio` samplers.
    pub sampler_arg: Option<String>,
    pub log_format: LogFormat,
    /// The log filter when `RUST_LOG` is not set, e.g. `info`.
    pub default_log_filter: String,
}

impl Settings {
    /// Nothing exported, text logs at `info`.
    pub fn new(service_name: impl Into<String>) -> Self {
        Settings {
            service_name: service_name.into(),
            otlp_endpoint: None,
            otlp_protocol: Protocol::HttpProtobuf,
            otlp_metrics: false,
            sampler: None,
            sampler_arg: None,
            log_format: LogFormat::Text,
            default_log_filter: "info".into(),
        }
    }
}

/// How spans and metrics travel to the OTLP receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: POST to `{endpoint}/v1/traces` and `{endpoint}/v1/metrics`.
    HttpProtobuf,
    /// `grpc`: needs a build with the `grpc` feature (`saga` binary: `otlp-grpc`).
    Grpc,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with `openTelemetry.traceId` and `openTelemetry.spanId`
    /// when the line was logged inside a traced span.
    Json,
}

/// A setting with a value it does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown {what} `{value}`: expected {expected}")]
    Unknown {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            _ => Err(Error::Unknown {
                what: "OTLP protocol",
                value: s.into(),
                expected: "`http/protobuf` or `grpc`",
            }),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::Grpc => "grpc",
        })
    }
}

impl FromStr for LogFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(Error::Unknown {
                what: "log format",
                value: s.into(),
                expected: "`text` or `json`",
            }),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}
