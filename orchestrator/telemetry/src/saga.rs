//! One trace per saga, whatever process records its spans and however long it runs.
//!
//! A saga outlives the request that started it and the process that runs it, so its trace
//! cannot hang on live span objects. Instead:
//!
//! - At start the runtime asks for a [`SagaTrace`]: a new trace id and root span id, sampled
//!   by the configured sampler. Its [`SagaTrace::traceparent`] is stored in the saga's
//!   `SagaStarted` event; after a restart [`SagaTrace::parse`] gives the same trace back.
//! - Spans that last longer than one input — a step attempt from its command to its reply,
//!   the saga from start to end — are recorded when they end
//!   ([`SagaTrace::record_child`], [`SagaTrace::record_root`]) with their real start time.
//!   A step attempt's span id is derived from a key (the command's message id), so the
//!   publish span, written long before, and the participant's spans under it already name
//!   it as their parent: [`SagaTrace::child_context`].
//!
//! A span recorded after a crash that lost it is simply missing; its children keep their
//! trace id and parent id, and viewers show them under the saga all the same.
//!
//! ```
//! use saga_telemetry::saga::SagaTrace;
//!
//! let trace = SagaTrace::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert_eq!(trace.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! // The same key gives the same span in every process, before and after a restart.
//! assert_eq!(trace.child_span_id("s-1.reserve_credit.1.do"), trace.child_span_id("s-1.reserve_credit.1.do"));
//! assert_ne!(trace.child_span_id("s-1.reserve_credit.1.do"), trace.child_span_id("s-1.reserve_credit.2.do"));
//! ```

use crate::ids;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use std::collections::HashMap;
use std::time::SystemTime;

/// The root of a saga's trace, as stored with the saga.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaTrace {
    root: SpanContext,
}

/// A span that has ended, to record in a saga's trace.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The span's name, e.g. `step reserve_credit`.
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// `Some(reason)` records the span with status Error and that description.
    pub error: Option<String>,
}

impl SagaTrace {
    /// A new trace for a new saga named `name`, or `None` when tracing is off. Whether it is
    /// sampled is the sampler's decision for a root span of that name.
    pub fn start(name: &str) -> Option<SagaTrace> {
        let state = crate::install::tracing_state()?;
        let trace_id = ids::random_trace_id();
        let decision =
            state
                .sampler
                .should_sample(None, trace_id, name, &SpanKind::Internal, &[], &[]);
        let sampled = decision.decision == SamplingDecision::RecordAndSample;
        Some(SagaTrace {
            root: SpanContext::new(
                trace_id,
                ids::random_span_id(),
                TraceFlags::default().with_sampled(sampled),
                false,
                decision.trace_state,
            ),
        })
    }

    /// The trace of a stored `traceparent`; `None` if it is not a valid one.
    pub fn parse(traceparent: &str) -> Option<SagaTrace> {
        let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let root = cx.span().span_context().clone();
        root.is_valid().then(|| SagaTrace {
            root: SpanContext::new(
                root.trace_id(),
                root.span_id(),
                root.trace_flags(),
                false,
                TraceState::default(),
            ),
        })
    }

    /// The W3C `traceparent` to store: `00-{trace id}-{root span id}-{flags}`.
    pub fn traceparent(&self) -> String {
        let mut carrier = HashMap::new();
        let cx = Context::new().with_remote_span_context(self.root.clone());
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        carrier.remove("traceparent").unwrap_or_default()
    }

    pub fn trace_id(&self) -> TraceId {
        self.root.trace_id()
    }

    /// The root span's id: the `saga <name>` span.
    pub fn root_span_id(&self) -> SpanId {
        self.root.span_id()
    }

    /// The id of the root's child span keyed `key` (FNV-1a of the trace id and the key).
    pub fn child_span_id(&self, key: &str) -> SpanId {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let bytes = self.trace_id().to_bytes();
        let hash = bytes
            .iter()
            .chain(key.as_bytes())
            .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
        // Zero is the invalid span id.
        SpanId::from(hash.max(1))
    }

    /// A context whose span is the root's child keyed `key`, to parent spans created now
    /// under a span that will be recorded later with [`SagaTrace::record_child`].
    pub fn child_context(&self, key: &str) -> Context {
        let child = SpanContext::new(
            self.trace_id(),
            self.child_span_id(key),
            self.root.trace_flags(),
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(child)
    }

    /// Records the saga's root span (no parent), with the root span id.
    pub fn record_root(&self, span: Finished) {
        self.record(span, self.root_span_id(), Context::new());
    }

    /// Records the root's child keyed `key`, with the id [`SagaTrace::child_span_id`] gives.
    pub fn record_child(&self, key: &str, span: Finished) {
        let parent = Context::new().with_remote_span_context(SpanContext::new(
            self.trace_id(),
            self.root_span_id(),
            self.root.trace_flags(),
            true,
            TraceState::default(),
        ));
        self.record(span, self.child_span_id(key), parent);
    }

    fn record(&self, span: Finished, span_id: SpanId, parent: Context) {
        let Some(state) = crate::install::tracing_state() else {
            return;
        };
        let builder = state
            .tracer
            .span_builder(span.name)
            .with_kind(SpanKind::Internal)
            .with_start_time(span.start)
            .with_attributes(span.attributes);
        let mut started = ids::with_ids(self.trace_id(), span_id, || {
            builder.start_with_context(&state.tracer, &parent)
        });
        if let Some(reason) = span.error {
            started.set_status(Status::error(reason));
        }
        started.end_with_timestamp(span.end);
    }
}
