//! Span and trace ids that the caller chooses, for spans recorded after the fact.
//!
//! The OpenTelemetry SDK takes every new span's id (and a root span's trace id) from the
//! provider's [`IdGenerator`]; a `SpanBuilder`'s own ids are ignored. A saga's step span must
//! have the id its children already point at (derived from the command's message id), so the
//! provider is built with [`Ids`]: random ids, unless [`with_ids`] asked for specific ones on
//! this thread for the duration of one synchronous span start.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use std::cell::Cell;

thread_local! {
    static NEXT_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
    static NEXT_SPAN: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Random ids, or the ones [`with_ids`] set for the span being started on this thread.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    random: RandomIdGenerator,
}

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_span_id())
    }
}

/// Runs `start` (which starts exactly one span, synchronously) so that the span gets
/// `span_id` and, when it has no parent, `trace_id`.
pub(crate) fn with_ids<T>(trace_id: TraceId, span_id: SpanId, start: impl FnOnce() -> T) -> T {
    NEXT_TRACE.with(|c| c.set(Some(trace_id)));
    NEXT_SPAN.with(|c| c.set(Some(span_id)));
    let started = start();
    // A span with a parent never asks for a trace id: do not leak it to the next span.
    NEXT_TRACE.with(|c| c.set(None));
    NEXT_SPAN.with(|c| c.set(None));
    started
}

/// A random trace id, for a new saga.
pub(crate) fn random_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

/// A random span id, for a new saga's root span.
pub(crate) fn random_span_id() -> SpanId {
    RandomIdGenerator::default().new_span_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_ids_apply_once_then_ids_are_random_again() {
        let ids = Ids::default();
        let (t, s) = (TraceId::from(7u128), SpanId::from(9u64));
        let (got_s, got_t) = with_ids(t, s, || (ids.new_span_id(), ids.new_trace_id()));
        assert_eq!((got_t, got_s), (t, s));
        assert_ne!(ids.new_span_id(), s);
        // Unused overrides (a span with a parent takes no trace id) are cleared too.
        with_ids(t, s, || ids.new_span_id());
        assert_ne!(ids.new_trace_id(), t);
    }
}
