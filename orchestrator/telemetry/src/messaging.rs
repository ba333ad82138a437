//! The spans of messaging over NATS, as OpenTelemetry's messaging conventions name them: one
//! `process {subject}` consumer span per message taken from a consumer, one
//! `publish {subject}` producer span per message sent. The orchestrator (commands out,
//! replies in) and every participant (commands in, replies out) use the same two.
//!
//! Both are disabled when tracing is off. Their `saga.id`, `saga.step` and `saga.attempt`
//! fields are empty until the caller records them (once it has decoded the message).

use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The consumer span of `message`, taken from consumer `consumer`: a child of the span that
/// published it, whose trace context travels in its headers.
pub fn process_span(message: &async_nats::Message, consumer: &str) -> tracing::Span {
    if !crate::tracing_enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {}", message.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = message.subject.as_str(),
        messaging.consumer.group.name = consumer,
        messaging.message.id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str()),
        messaging.message.body.size = message.payload.len(),
        saga.id = tracing::field::Empty,
        saga.step = tracing::field::Empty,
        saga.attempt = tracing::field::Empty,
    );
    // Only fails when the span is disabled, and then there is nothing to parent.
    let _ = span.set_parent(crate::propagation::extract(message.headers.as_ref()));
    span
}

/// The producer span of sending message `message_id` of `body_size` bytes on `subject`, a
/// child of the current span (the caller may give it another parent).
pub fn publish_span(subject: &str, message_id: &str, body_size: usize) -> tracing::Span {
    if !crate::tracing_enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "publish",
        otel.name = format!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = subject,
        messaging.message.id = message_id,
        messaging.message.body.size = body_size,
        saga.id = tracing::field::Empty,
        saga.step = tracing::field::Empty,
        saga.attempt = tracing::field::Empty,
    )
}
