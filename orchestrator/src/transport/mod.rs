//! JetStream transport of the orchestrator: publishes commands with their deterministic
//! `Nats-Msg-Id`, consumes replies through a durable pull consumer, dead-letters what it
//! cannot read.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_orchestrator::transport::Error> {
//! let transport = saga_orchestrator::transport::Transport::connect("nats://127.0.0.1:4222", 1).await?;
//! let replies = transport.replies("orchestrator").await?;
//! # Ok(()) }
//! ```

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use bytes::Bytes;
use saga_protocol::{CommandEnvelope, headers, subjects};
use std::time::Duration;

/// Why a transport operation failed. Every variant is an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot create the JetStream streams: {0}")]
    Streams(#[from] jetstream::context::CreateStreamError),
    #[error("cannot create the reply consumer: {0}")]
    Consumer(String),
    #[error("JetStream did not accept the publish: {0}")]
    Publish(#[from] jetstream::context::PublishError),
}

impl Error {
    /// Whether trying again later may succeed (all transport failures may, but a bad URL).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Error::Connect { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to NATS JetStream with the protocol's streams in place. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    client: async_nats::Client,
    js: jetstream::Context,
}

/// How long a reply may stay unacknowledged before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(30);

impl Transport {
    /// Connects and creates the streams if they do not exist (`replicas` copies each).
    pub async fn connect(url: &str, replicas: usize) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("saga-orchestrator")
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                url: url.to_string(),
                source,
            })?;
        let js = jetstream::new(client.clone());
        saga_protocol::streams::ensure(&js, replicas).await?;
        Ok(Transport { client, js })
    }

    /// The underlying client, for request/reply calls (admin) and health checks.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes commands and waits until JetStream has stored all of them.
    ///
    /// Publishes are pipelined: every message is sent before the first ack is awaited.
    /// A command published twice (after a crash) carries the same `Nats-Msg-Id`, so JetStream
    /// drops the copy inside its window and the participant's inbox drops it after.
    pub async fn publish_all(&self, commands: &[&CommandEnvelope]) -> Result<()> {
        let mut acks = Vec::with_capacity(commands.len());
        for cmd in commands {
            let msg = PublishMessage::build()
                .payload(Bytes::from(cmd.encode()))
                .message_id(cmd.message_id.as_str());
            let subject = subjects::command(&cmd.participant, &cmd.command);
            acks.push(self.js.send_publish(subject, msg).await?);
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }

    /// Sends an undecodable or unusable message to the dead-letter stream with the reason,
    /// so the consumer can acknowledge it and keep going.
    pub async fn dead_letter(&self, msg: &jetstream::Message, reason: &str) -> Result<()> {
        let sequence = msg
            .info()
            .map(|i| i.stream_sequence.to_string())
            .unwrap_or_default();
        let publish = PublishMessage::build()
            .payload(msg.payload.clone())
            .header(headers::DLQ_REASON, reason)
            .header(headers::DLQ_ORIGINAL_SUBJECT, msg.subject.as_str())
            .header(headers::DLQ_ORIGINAL_SEQUENCE, sequence.as_str())
            .header(headers::DLQ_CONSUMER, REPLY_CONSUMER);
        self.js
            .send_publish(subjects::dead_letter(REPLY_CONSUMER), publish)
            .await?
            .await?;
        Ok(())
    }

    /// The durable pull consumer of every participant reply. Replicas of the orchestrator
    /// share it, so each reply goes to one of them.
    pub async fn replies(&self, durable: &str) -> Result<consumer::PullConsumer> {
        let stream = self
            .js
            .get_stream(subjects::REPLIES_STREAM)
            .await
            .map_err(|e| Error::Consumer(e.to_string()))?;
        stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.to_string()),
                    filter_subject: subjects::REPLIES_SUBJECTS.to_string(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Consumer(e.to_string()))
    }
}

/// Name of the orchestrator's reply consumer, also used as its dead-letter subject suffix.
pub const REPLY_CONSUMER: &str = "orchestrator";
