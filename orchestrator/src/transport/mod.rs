//! JetStream transport of the orchestrator: publishes commands with their deterministic
//! `Nats-Msg-Id`, consumes replies through a durable pull consumer, dead-letters what it
//! cannot read.
//!
//! With tracing on, each command is published inside a `publish saga.cmd.{participant}.{Command}`
//! span (kind producer, OpenTelemetry messaging attributes) whose parent is the command's step
//! span, and carries that span's context as `traceparent`: the participant continues the
//! saga's trace from there.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_orchestrator::transport::Error> {
//! let transport = saga_orchestrator::transport::Transport::connect("nats://127.0.0.1:4222", 1).await?;
//! let pulling = saga_protocol::inbound::Pulling::default();
//! let bound = std::time::Duration::from_secs(5);
//! let mut replies = transport.replies("orchestrator", bound, 128, pulling).await?;
//! let reply = replies.next().await;
//! # Ok(()) }
//! ```

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use saga_protocol::inbound::{Inbound, Pulling};
use saga_protocol::{CommandEnvelope, subjects};
use saga_telemetry::saga::SagaTrace;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Why a transport operation failed. Every variant is an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] saga_protocol::servers::ConnectError),
    #[error("cannot create the JetStream streams: {0}")]
    Streams(#[from] jetstream::context::CreateStreamError),
    #[error(transparent)]
    Consumer(#[from] saga_protocol::consumers::Error),
    #[error("JetStream did not accept the publish: {0}")]
    Publish(#[from] jetstream::context::PublishError),
    #[error("cannot read consumer {consumer}: {reason}")]
    ConsumerInfo { consumer: String, reason: String },
}

impl Error {
    /// Whether trying again later may succeed: a publish or a look-up may; a bad URL, and a
    /// stream or consumer that set-up (which waits out NATS being away) could not create,
    /// cannot.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Connect(_) | Error::Streams(_) | Error::Consumer(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to NATS JetStream with the protocol's streams in place. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Transport {
    /// Connects to `url` (one NATS URL, or the comma-separated nodes of a cluster) and
    /// creates the streams if they do not exist (`replicas` copies each). NATS not being up
    /// yet is waited out: the client keeps connecting in the background and the streams are
    /// created once it is there.
    pub async fn connect(url: &str, replicas: usize) -> Result<Self> {
        let client = saga_protocol::servers::connect(url, "saga-orchestrator").await?;
        let js = jetstream::new(client.clone());
        saga_protocol::streams::ensure(&js, replicas).await?;
        Ok(Transport { client, js })
    }

    /// The JetStream context, for the partition leases' KV bucket.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The underlying client, for request/reply calls (admin) and health checks.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes commands of the saga traced by `trace` and waits until JetStream has
    /// stored all of them.
    ///
    /// Publishes are pipelined: every message is sent before the first ack is awaited.
    /// A command published twice (after a crash) carries the same `Nats-Msg-Id`, so JetStream
    /// drops the copy inside its window and the participant's inbox drops it after.
    pub async fn publish_all(
        &self,
        commands: &[&CommandEnvelope],
        trace: Option<&SagaTrace>,
    ) -> Result<()> {
        let mut acks = Vec::with_capacity(commands.len());
        for cmd in commands {
            let subject = subjects::command(&cmd.participant, &cmd.command);
            let payload = Bytes::from(cmd.encode());
            let span = publish_span(&subject, cmd, payload.len(), trace);
            let mut trace_headers = HeaderMap::new();
            if !span.is_none() {
                saga_telemetry::propagation::inject(&span.context(), &mut trace_headers);
            }
            let msg = PublishMessage::build()
                .payload(payload)
                .headers(trace_headers)
                .message_id(cmd.message_id.as_str());
            match self.js.send_publish(subject, msg).await {
                Ok(ack) => acks.push((ack, span)),
                Err(e) => {
                    span.set_status(opentelemetry::trace::Status::error(e.to_string()));
                    return Err(e.into());
                }
            }
        }
        for (ack, span) in acks {
            if let Err(e) = ack.await {
                span.set_status(opentelemetry::trace::Status::error(e.to_string()));
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Sends an undecodable or unusable message to the dead-letter stream with the reason,
    /// so the consumer can acknowledge it and keep going (see [`saga_protocol::dead_letter`]).
    pub async fn dead_letter(&self, msg: &jetstream::Message, reason: &str) -> Result<()> {
        saga_protocol::dead_letter::publish(&self.js, msg, REPLY_CONSUMER, REPLY_CONSUMER, reason)
            .await?;
        Ok(())
    }

    /// The state of the reply consumer, for its lag.
    pub async fn reply_consumer_info(&self) -> Result<consumer::Info> {
        let failed = |reason: String| Error::ConsumerInfo {
            consumer: REPLY_CONSUMER.to_string(),
            reason,
        };
        self.js
            .get_stream_no_info(subjects::REPLIES_STREAM)
            .await
            .map_err(|e| failed(e.to_string()))?
            .consumer_info(REPLY_CONSUMER)
            .await
            .map_err(|e| failed(e.to_string()))
    }

    /// The durable pull consumer of every participant reply, pulling at most `batch` ahead.
    /// Replicas of the orchestrator share it, so each reply goes to one of them; a reply held
    /// by a replica that dies goes to another after `ack_wait` (the failover bound).
    pub async fn replies(
        &self,
        durable: &str,
        ack_wait: Duration,
        batch: usize,
        pulling: Pulling,
    ) -> Result<Inbound> {
        let config = consumer::pull::Config {
            durable_name: Some(durable.to_string()),
            filter_subject: subjects::REPLIES_SUBJECTS.to_string(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_ack_pending: 10_000,
            ..Default::default()
        };
        Ok(Inbound::open(
            self.js.clone(),
            subjects::REPLIES_STREAM,
            config,
            batch,
            ack_wait,
            pulling,
        )
        .await?)
    }
}

/// Name of the orchestrator's reply consumer, also used as its dead-letter subject suffix.
pub const REPLY_CONSUMER: &str = "orchestrator";

/// The producer span of one command, child of its step span; disabled when tracing is off
/// or the saga has no trace.
fn publish_span(
    subject: &str,
    cmd: &CommandEnvelope,
    body_size: usize,
    trace: Option<&SagaTrace>,
) -> tracing::Span {
    let Some(trace) = trace.filter(|_| saga_telemetry::tracing_enabled()) else {
        return tracing::Span::none();
    };
    let span = saga_telemetry::messaging::publish_span(subject, cmd.message_id.as_str(), body_size);
    span.record("saga.id", tracing::field::display(cmd.saga_id));
    span.record("saga.step", cmd.step.as_str());
    span.record("saga.attempt", cmd.attempt);
    // Only fails when the span is disabled, and then there is nothing to parent.
    let _ = span.set_parent(trace.child_context(cmd.message_id.as_str()));
    span
}
