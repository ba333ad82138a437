//! The JetStream transport: publishes commands with their deterministic `Nats-Msg-Id`,
//! consumes replies through a durable pull consumer, dead-letters what it cannot read, and
//! keeps the partition leases in a KV bucket.
//!
//! With tracing on, each command is published inside a `publish saga.cmd.{participant}.{Command}`
//! span (kind producer, OpenTelemetry messaging attributes) whose parent is the command's step
//! span, and carries that span's context as `traceparent`: the participant continues the
//! saga's trace from there.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_orchestrator::transport::Error> {
//! use saga_orchestrator::transport::{JetStream, Replies, Subscription, Transport};
//! let credentials = saga_protocol::auth::Credentials::read("orchestrator.nk".as_ref())?;
//! let transport = JetStream::connect("nats://127.0.0.1:4222", 1, &credentials).await?;
//! let mut replies = transport.replies(Subscription::default()).await?;
//! let reply = replies.next().await;
//! # Ok(()) }
//! ```

use super::{Delivery, Error, Lag, REPLY_CONSUMER, Replies, Result, Subscription, Transport};
use crate::partitions::LeaseOptions;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, message::PublishMessage};
use bytes::Bytes;
use saga_protocol::auth::{Credentials, Role};
use saga_protocol::inbound::Inbound;
use saga_protocol::{CommandEnvelope, Timestamp, subjects};
use saga_telemetry::saga::SagaTrace;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A connection to NATS JetStream with the protocol's streams in place. Cheap to clone.
#[derive(Clone)]
pub struct JetStream {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl JetStream {
    /// Connects to `url` (one NATS URL, or the comma-separated nodes of a cluster) as the
    /// orchestrator user of `credentials` and creates the streams if they do not exist
    /// (`replicas` copies each). NATS not being up yet is waited out: the client keeps
    /// connecting in the background and the streams are created once it is there.
    pub async fn connect(url: &str, replicas: usize, credentials: &Credentials) -> Result<Self> {
        let client = saga_protocol::servers::connect(
            url,
            "saga-orchestrator",
            &Role::Orchestrator,
            credentials,
        )
        .await?;
        let js = jetstream::new(client.clone());
        saga_protocol::streams::ensure(&js, replicas).await?;
        Ok(JetStream { client, js })
    }

    /// The underlying client, for request/reply calls (admin).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

impl Transport for JetStream {
    type Delivery = jetstream::Message;
    type Replies = Inbound;
    type Keeper = super::leases::Leases;

    /// Publishes are pipelined: every message is sent before the first ack is awaited.
    /// A command published twice (after a crash) carries the same `Nats-Msg-Id`, so JetStream
    /// drops the copy inside its window and the participant's inbox drops it after.
    async fn publish(
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

    /// The durable pull consumer of every participant reply. Replicas of the orchestrator
    /// share it, so each reply goes to one of them; a reply held by a replica that dies goes
    /// to another after `ack_wait` (the failover bound). NATS away is waited out.
    async fn replies(&self, subscription: Subscription) -> Result<Inbound> {
        let config = consumer::pull::Config {
            durable_name: Some(subscription.durable),
            filter_subject: subjects::REPLIES_SUBJECTS.to_string(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: subscription.ack_wait,
            max_ack_pending: 10_000,
            ..Default::default()
        };
        Ok(Inbound::open(
            self.js.clone(),
            subjects::REPLIES_STREAM,
            config,
            subscription.batch,
            subscription.ack_wait,
            subscription.pulling,
        )
        .await?)
    }

    /// Leases in the KV bucket [`super::leases::BUCKET`]; opening it waits out NATS being away.
    async fn leases(&self, options: LeaseOptions) -> Result<super::leases::Leases> {
        Ok(super::leases::Leases::open(&self.js, options).await?)
    }

    async fn reply_lag(&self) -> Result<Lag> {
        let failed = |reason: String| Error::ConsumerInfo {
            consumer: REPLY_CONSUMER.to_string(),
            reason,
        };
        let info = self
            .js
            .get_stream_no_info(subjects::REPLIES_STREAM)
            .await
            .map_err(|e| failed(e.to_string()))?
            .consumer_info(REPLY_CONSUMER)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(Lag {
            consumer: info.name.clone(),
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
        })
    }

    fn connected(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(state.to_string()),
        }
    }
}

impl Replies for Inbound {
    type Delivery = jetstream::Message;

    async fn next(&mut self) -> jetstream::Message {
        Inbound::next(self).await
    }
}

impl Delivery for jetstream::Message {
    fn subject(&self) -> &str {
        self.subject.as_str()
    }

    fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The publish time the server recorded, and the consumer's pending count.
    fn published(&self) -> Option<(Timestamp, u64)> {
        let info = self.info().ok()?;
        let millis = info.published.unix_timestamp_nanos() / 1_000_000;
        Some((Timestamp(i64::try_from(millis).ok()?), info.pending))
    }

    fn span(&self) -> tracing::Span {
        saga_telemetry::messaging::process_span(self, REPLY_CONSUMER)
    }

    async fn in_progress<F>(&self, ack_wait: Duration, work: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        saga_protocol::consumers::in_progress(self, ack_wait, work).await
    }

    async fn ack(&self) -> Result<()> {
        jetstream::Message::ack(self)
            .await
            .map_err(|e| Error::Settle {
                action: "ack",
                reason: e.to_string(),
            })
    }

    async fn nak(&self, delay: Duration) -> Result<()> {
        self.ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| Error::Settle {
                action: "nak",
                reason: e.to_string(),
            })
    }

    /// See [`saga_protocol::dead_letter`]: the reason is capped, the trace context and a
    /// dedup id go with the copy.
    async fn dead_letter(&self, reason: &str) -> Result<()> {
        saga_protocol::dead_letter::publish(
            &self.context,
            self,
            REPLY_CONSUMER,
            REPLY_CONSUMER,
            reason,
        )
        .await?;
        Ok(())
    }
}

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
