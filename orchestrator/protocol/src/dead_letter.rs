//! Dead letters: a message a consumer cannot use (undecodable, not for it) is published to
//! `saga.dlq.{owner}` (stream `SAGA_DLQ`) with why, so the consumer can acknowledge it and keep
//! going, and an operator can inspect and replay it (`saga dlq`).
//!
//! The dead letter is the raw payload with the headers [`crate::headers`] names: the reason
//! (control characters blanked, at most [`MAX_REASON_LEN`] characters, as a header must be),
//! the original subject and stream sequence, the consumer, and the original trace context, so
//! it stays in the trace of the message it was. Its `Nats-Msg-Id` is
//! `dlq.{consumer}.{sequence}`: dead-lettering one stream message twice (a crash before the
//! ack) stores it once.

use crate::{headers, subjects};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishError, message::PublishMessage};

/// Longest dead-letter reason put in a header.
pub const MAX_REASON_LEN: usize = 1024;

/// Publishes `message` to `saga.dlq.{owner}` as consumer `consumer`'s dead letter with
/// `reason`, and waits for JetStream to store it. The caller acknowledges the message after.
pub async fn publish(
    js: &jetstream::Context,
    message: &jetstream::Message,
    owner: &str,
    consumer: &str,
    reason: &str,
) -> Result<(), PublishError> {
    let sequence = message.info().ok().map(|i| i.stream_sequence.to_string());
    let mut headers = HeaderMap::new();
    for name in [headers::TRACEPARENT, headers::TRACESTATE] {
        if let Some(value) = message.headers.as_ref().and_then(|h| h.get(name)) {
            headers.insert(name, value.as_str());
        }
    }
    headers.insert(headers::DLQ_REASON, header_safe(reason).as_str());
    headers.insert(headers::DLQ_ORIGINAL_SUBJECT, message.subject.as_str());
    headers.insert(
        headers::DLQ_ORIGINAL_SEQUENCE,
        sequence.as_deref().unwrap_or("unknown"),
    );
    headers.insert(headers::DLQ_CONSUMER, consumer);
    let mut publish = PublishMessage::build()
        .payload(message.payload.clone())
        .headers(headers);
    if let Some(sequence) = &sequence {
        publish = publish.message_id(format!("dlq.{consumer}.{sequence}"));
    }
    js.send_publish(subjects::dead_letter(owner), publish)
        .await?
        .await?;
    Ok(())
}

/// `reason` as a header value: control characters (a header ends at a line break) blanked,
/// at most [`MAX_REASON_LEN`] characters.
pub fn header_safe(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_fits_in_a_header() {
        assert_eq!(header_safe("bad\r\nline"), "bad  line");
        assert_eq!(header_safe(&"x".repeat(5000)).len(), MAX_REASON_LEN);
    }
}
