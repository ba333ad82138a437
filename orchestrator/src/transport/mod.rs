//! The transport seam: commands out, replies in, and who owns which partitions.
//!
//! [`Transport`] is what the runtime needs of a message bus, and nothing more: publish the
//! commands it decided, consume participant replies (each a [`Delivery`] to acknowledge,
//! retry or dead-letter), keep this replica's partition leases, and report the reply backlog
//! and the connection for health. Two implementations keep one contract (checked by the same
//! suite, `tests/transport_contract.rs`):
//!
//! - [`JetStream`]: NATS JetStream, in production. Commands carry their deterministic
//!   `Nats-Msg-Id`, replies come through a durable pull consumer shared by the replicas, and
//!   leases live in a KV bucket ([`leases`]).
//! - [`MemoryTransport`]: in process memory, so the runtime runs on a paused tokio clock with
//!   no server; the test plays the participants through it.
//!
//! ```
//! use saga_orchestrator::transport::{MemoryTransport, Subscription, Transport, Replies, Delivery};
//! use saga_orchestrator::clock::SystemClock;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> saga_orchestrator::transport::Result<()> {
//! let transport = MemoryTransport::new(SystemClock);
//! transport.deliver("saga.reply.account", b"not a reply".to_vec());
//! let mut replies = transport.replies(Subscription::default()).await?;
//! let delivery = replies.next().await;
//! delivery.dead_letter("cannot decode").await?;
//! assert_eq!(transport.dead_letters()[0].reason, "cannot decode");
//! # Ok(()) }
//! ```

mod jetstream;
pub mod leases;
mod memory;

pub use jetstream::JetStream;
pub use memory::{DeadLetter, MemoryTransport, Published, SoleOwner};

use crate::partitions::{Keeper, LeaseOptions};
use saga_protocol::inbound::Pulling;
use saga_protocol::{CommandEnvelope, Timestamp};
use saga_telemetry::saga::SagaTrace;
use std::time::Duration;

/// Why a transport operation failed. Every variant is an infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] saga_protocol::servers::ConnectError),
    #[error("cannot create the JetStream streams: {0}")]
    Streams(#[from] async_nats::jetstream::context::CreateStreamError),
    #[error(transparent)]
    Consumer(#[from] saga_protocol::consumers::Error),
    #[error("JetStream did not accept the publish: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("cannot read consumer {consumer}: {reason}")]
    ConsumerInfo { consumer: String, reason: String },
    #[error(transparent)]
    Leases(#[from] leases::Error),
    #[error("cannot {action} a message: {reason}")]
    Settle {
        action: &'static str,
        reason: String,
    },
    #[error("the transport is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Credentials(#[from] saga_protocol::auth::Error),
}

impl Error {
    /// Whether trying again later may succeed: a publish, a look-up or a settlement may; a bad
    /// URL, and a stream or consumer that set-up (which waits out NATS being away) could not
    /// create, cannot.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            Error::Connect(_) | Error::Streams(_) | Error::Consumer(_) | Error::Credentials(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Name of the orchestrator's reply consumer, also used as its dead-letter subject suffix.
pub const REPLY_CONSUMER: &str = "orchestrator";

/// A message bus for the runtime. Cheap to clone; clones share one connection.
pub trait Transport: Clone + Send + Sync + 'static {
    type Delivery: Delivery;
    type Replies: Replies<Delivery = Self::Delivery>;
    type Keeper: Keeper;

    /// Publishes the commands of the saga traced by `trace` and returns once the bus has
    /// stored all of them. A command published again carries the same message id and is
    /// stored once.
    fn publish(
        &self,
        commands: &[&CommandEnvelope],
        trace: Option<&SagaTrace>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The replies of every participant, through the consumer `subscription` names. A reply
    /// neither acknowledged nor dead-lettered is delivered again (after the ack wait, or the
    /// delay of a [`Delivery::nak`]).
    fn replies(
        &self,
        subscription: Subscription,
    ) -> impl Future<Output = Result<Self::Replies>> + Send;

    /// The lease keeper of this replica (not running yet).
    fn leases(&self, options: LeaseOptions) -> impl Future<Output = Result<Self::Keeper>> + Send;

    /// How far the reply consumer is behind.
    fn reply_lag(&self) -> impl Future<Output = Result<Lag>> + Send;

    /// Whether the bus is reachable now; when not, what state the connection is in.
    fn connected(&self) -> Result<(), String>;
}

/// The consumer of replies to open.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The durable consumer's name, shared by the replicas.
    pub durable: String,
    /// How long a reply may stay unacknowledged before it goes to another replica.
    pub ack_wait: Duration,
    /// Replies pulled ahead.
    pub batch: usize,
    /// Set while the consumer is pulling (read by `/readyz`).
    pub pulling: Pulling,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            durable: REPLY_CONSUMER.to_string(),
            ack_wait: Duration::from_secs(30),
            batch: 64,
            pulling: Pulling::default(),
        }
    }
}

/// The reply consumer's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub consumer: String,
    /// Replies stored and not yet delivered.
    pub pending: u64,
    /// Replies delivered and not yet acknowledged.
    pub ack_pending: u64,
}

/// Replies as they arrive.
pub trait Replies: Send {
    type Delivery: Delivery;

    /// The next reply. Waits out the bus being away.
    ///
    /// # Cancel safety
    /// Cancel safe: a reply is taken only when this returns it.
    fn next(&mut self) -> impl Future<Output = Self::Delivery> + Send;
}

/// One delivered reply, to settle by exactly one of [`ack`](Delivery::ack),
/// [`nak`](Delivery::nak) or [`dead_letter`](Delivery::dead_letter) then `ack`.
pub trait Delivery: Send + Sync + 'static {
    /// Its subject (`saga.reply.{participant}`).
    fn subject(&self) -> &str;

    /// Its body, to decode.
    fn payload(&self) -> &[u8];

    /// When the bus stored it, and how many replies wait behind it.
    fn published(&self) -> Option<(Timestamp, u64)>;

    /// The `process` span of handling it, continuing the trace its sender put in it.
    fn span(&self) -> tracing::Span;

    /// Runs `work` while telling the bus it is still being worked on, so it is not delivered
    /// elsewhere meanwhile.
    fn in_progress<F>(&self, ack_wait: Duration, work: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send,
        F::Output: Send;

    /// Handled: never delivered again.
    fn ack(&self) -> impl Future<Output = Result<()>> + Send;

    /// Not handled now: delivered again after `delay`.
    fn nak(&self, delay: Duration) -> impl Future<Output = Result<()>> + Send;

    /// Copies it, with `reason`, to the dead-letter stream. The caller then acks it.
    fn dead_letter(&self, reason: &str) -> impl Future<Output = Result<()>> + Send;
}
