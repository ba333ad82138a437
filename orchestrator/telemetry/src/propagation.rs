//! W3C trace context in NATS message headers.
//!
//! Every command, reply and dead letter carries the context of the span that published it as
//! `traceparent` (and `tracestate` when there is one), exactly as in HTTP. The consumer
//! extracts it and makes its own span a child, so one saga is one trace across processes.
//!
//! ```
//! use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
//! use opentelemetry::Context;
//!
//! let sent = SpanContext::new(
//!     TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
//!     SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
//!     TraceFlags::SAMPLED,
//!     false,
//!     TraceState::default(),
//! );
//! let mut headers = async_nats::HeaderMap::new();
//! saga_telemetry::propagation::inject(&Context::new().with_remote_span_context(sent.clone()), &mut headers);
//! assert_eq!(
//!     headers.get("traceparent").map(|v| v.as_str()),
//!     Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
//! );
//! let received = saga_telemetry::propagation::extract(Some(&headers));
//! assert_eq!(received.span().span_context().span_id(), sent.span_id());
//! ```

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Writes the span context of `cx` into `headers`. Writes nothing for a context without a
/// valid span (tracing off).
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut NatsHeaders(headers));
}

/// The context carried by `headers`, with the sender's span as a remote parent; an empty
/// context when there are no headers or no valid `traceparent`.
pub fn extract(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&NatsHeadersRef(headers)),
        None => Context::new(),
    }
}

struct NatsHeaders<'a>(&'a mut HeaderMap);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct NatsHeadersRef<'a>(&'a HeaderMap);

impl Extractor for NatsHeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn garbage_or_missing_headers_give_an_empty_context() {
        assert!(!extract(None).has_active_span());
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "not-a-traceparent");
        assert!(!extract(Some(&headers)).span().span_context().is_valid());
        let mut out = HeaderMap::new();
        inject(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
