//! One command message, from JetStream to its ack: decode, check, handle, reply, ack.
//!
//! Ordering is what makes a crash harmless: the reply is published (and its PubAck awaited)
//! before the command is acked, so a crash in between only causes a redelivery, which the
//! inbox answers with the recorded reply. Infrastructure errors are NAKed with a delay and
//! never answered. Input that is not a command for this participant goes to the dead-letter
//! subject with the reason, then is acked: it would fail the same way forever.
//!
//! With tracing on, the whole of it is a `process saga.cmd.{participant}.{Command}` span
//! (kind consumer), child of the orchestrator's publish span named by the command's
//! `traceparent`; the handler's span and the reply's `publish saga.reply.{participant}` span
//! (whose context the reply carries back) are its children.

use crate::participant::Error;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, message::PublishMessage as Publish};
use opentelemetry::trace::Status;
use saga_protocol::{CommandEnvelope, ReplyEnvelope, subjects};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};
use tracing::{Instrument, debug, error, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use saga_protocol::inbound::RETRY_DELAY;
/// Delay before a command that hit a permanent error (corrupt data) is tried again.
const STUCK_DELAY: Duration = Duration::from_secs(30);
/// After this many deliveries that all hit a transient error, the participant stops
/// retrying by itself and answers `Failed`, so the orchestrator's durable retries (with
/// backoff, visible in the saga's history) take over.
const FAIL_AFTER_DELIVERIES: i64 = 5;

/// What every message task needs, shared.
#[derive(Debug)]
pub(super) struct Context {
    pub js: jetstream::Context,
    /// The participant's name (`account`, `order`).
    pub participant: &'static str,
    pub consumer: String,
    /// Commands the participant knows, with the kind each must be sent as.
    pub commands: &'static [(&'static str, saga_protocol::CommandKind)],
    pub metrics: crate::metrics::Metrics,
    /// The consumer's ack wait; a command in hand is marked in progress well within it.
    pub ack_wait: Duration,
    /// The largest command decoded; a larger one is dead-lettered.
    pub max_message: usize,
}

impl Context {
    /// The envelope in `payload`, or why it cannot be handled here.
    fn check(&self, payload: &[u8]) -> Result<CommandEnvelope, String> {
        saga_protocol::limits::check(payload, self.max_message).map_err(|e| e.to_string())?;
        let envelope = CommandEnvelope::decode(payload).map_err(|e| e.to_string())?;
        if envelope.participant != self.participant {
            return Err(format!(
                "addressed to participant `{}`, received by `{}`",
                envelope.participant, self.participant
            ));
        }
        match self.commands.iter().find(|(c, _)| *c == envelope.command) {
            None => Err(format!(
                "unknown command `{}` for participant `{}`",
                envelope.command, self.participant
            )),
            Some((_, kind)) if *kind != envelope.kind => Err(format!(
                "command `{}` must be sent as {kind:?}, was sent as {:?}",
                envelope.command, envelope.kind
            )),
            Some(_) => Ok(envelope),
        }
    }
}

/// Processes one message to its ack or NAK. Never panics on input; failures are logged.
pub(super) async fn process<S>(ctx: &Context, service: S, message: jetstream::Message)
where
    S: Service<CommandEnvelope, Response = ReplyEnvelope, Error = Error>,
{
    let span = saga_telemetry::messaging::process_span(&message, &ctx.consumer);
    process_in_span(ctx, service, message)
        .instrument(span)
        .await;
}

async fn process_in_span<S>(ctx: &Context, service: S, message: jetstream::Message)
where
    S: Service<CommandEnvelope, Response = ReplyEnvelope, Error = Error>,
{
    let envelope = match ctx.check(&message.payload) {
        Ok(envelope) => envelope,
        Err(reason) => return dead_letter(ctx, &message, &reason).await,
    };
    let span = tracing::Span::current();
    span.record("saga.id", tracing::field::display(envelope.saga_id));
    span.record("saga.step", envelope.step.as_str());
    span.record("saga.attempt", envelope.attempt);
    let message_id = envelope.message_id.clone();
    debug!(%message_id, command = %envelope.command, "handling command");
    let failed_for = envelope.clone();
    let started = Instant::now();
    let handled =
        saga_protocol::consumers::in_progress(&message, ctx.ack_wait, service.oneshot(envelope))
            .await;
    let outcome = match &handled {
        Ok(reply) => reply.outcome.status(),
        Err(e) if e.is_transient() => "retried",
        Err(_) => "error",
    };
    ctx.metrics
        .command(&failed_for.command, outcome, started.elapsed());
    match handled {
        Ok(reply) => match publish_reply(ctx, &reply, message.headers.as_ref()).await {
            Ok(()) => {
                match message.double_ack().await {
                    Ok(()) => debug!(%message_id, "replied and acked"),
                    // The reply is out; a redelivery gets the recorded reply again.
                    Err(e) => warn!(%message_id, error = %e, "ack failed"),
                }
            }
            Err(e) => {
                warn!(%message_id, error = %e, "reply not published, retrying later");
                nak(&message, RETRY_DELAY).await;
            }
        },
        Err(Error::Expired(reason)) => dead_letter(ctx, &message, &reason).await,
        Err(e) if e.is_transient() => {
            span.set_status(Status::error(e.to_string()));
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            if delivered < FAIL_AFTER_DELIVERIES {
                warn!(%message_id, error = %e, delivered, "transient failure, retrying later");
                return nak(&message, RETRY_DELAY).await;
            }
            // Nothing was applied (the transaction did not commit) and nothing is recorded
            // in the inbox: the orchestrator's next attempt has a new message id.
            warn!(%message_id, error = %e, delivered, "transient failure persists, answering Failed");
            let outcome = saga_protocol::Outcome::Failed {
                reason: e.to_string(),
            };
            let reply =
                ReplyEnvelope::answering(&failed_for, outcome, saga_protocol::Timestamp::now());
            ctx.metrics
                .command(&failed_for.command, "failed", started.elapsed());
            match publish_reply(ctx, &reply, message.headers.as_ref()).await {
                Ok(()) => {
                    if let Err(e) = message.double_ack().await {
                        warn!(%message_id, error = %e, "ack failed");
                    }
                }
                Err(_) => nak(&message, RETRY_DELAY).await,
            }
        }
        Err(e) => {
            span.set_status(Status::error(e.to_string()));
            error!(%message_id, error = %e, "command cannot be handled, retrying later");
            nak(&message, STUCK_DELAY).await;
        }
    }
}

/// Publishes `reply` with `Nats-Msg-Id` = its message id and waits for the stream's PubAck.
/// The reply is in the command's trace: with tracing on, as the child of its publish span;
/// with tracing off, carrying the command's own trace context on, so the trace does not end
/// here.
async fn publish_reply(
    ctx: &Context,
    reply: &ReplyEnvelope,
    command_headers: Option<&HeaderMap>,
) -> Result<(), async_nats::Error> {
    let subject = subjects::reply(ctx.participant);
    let payload = reply.encode();
    let span =
        saga_telemetry::messaging::publish_span(&subject, reply.message_id.as_str(), payload.len());
    let mut trace_headers = HeaderMap::new();
    if !span.is_none() {
        saga_telemetry::propagation::inject(&span.context(), &mut trace_headers);
    } else if let Some(headers) = command_headers {
        for name in [
            saga_protocol::headers::TRACEPARENT,
            saga_protocol::headers::TRACESTATE,
        ] {
            if let Some(value) = headers.get(name) {
                trace_headers.insert(name, value.as_str());
            }
        }
    }
    let publish = Publish::build()
        .payload(payload.into())
        .headers(trace_headers)
        .message_id(reply.message_id.as_str());
    let published = async {
        ctx.js.send_publish(subject, publish).await?.await?;
        Ok::<_, async_nats::Error>(())
    }
    .instrument(span.clone())
    .await;
    if let Err(e) = &published {
        span.set_status(Status::error(e.to_string()));
    }
    published
}

async fn nak(message: &jetstream::Message, delay: Duration) {
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        // Without the NAK the message comes back after ack_wait all the same.
        warn!(error = %e, "nak failed");
    }
}

/// Publishes the raw payload to the dead-letter subject with the reason, then acks it.
async fn dead_letter(ctx: &Context, message: &jetstream::Message, reason: &str) {
    let sequence = message
        .info()
        .map(|i| i.stream_sequence.to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    warn!(subject = %message.subject, %sequence, reason, "dead-lettering message");
    tracing::Span::current().set_status(Status::error(format!("dead-lettered: {reason}")));
    let published = saga_protocol::dead_letter::publish(
        &ctx.js,
        message,
        ctx.participant,
        &ctx.consumer,
        reason,
    );
    match published.await {
        Ok(()) => {
            ctx.metrics.dead_lettered(&ctx.consumer);
            if let Err(e) = message.double_ack().await {
                warn!(error = %e, "ack of a dead-lettered message failed");
            }
        }
        Err(e) => {
            // Never lose it: keep it in the stream and try again.
            warn!(error = %e, "dead-letter publish failed, retrying later");
            nak(message, RETRY_DELAY).await;
        }
    }
}
