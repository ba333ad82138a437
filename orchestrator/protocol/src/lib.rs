//! The wire contract between the orchestrator and its participants.
//!
//! Everything here is persisted or sent over NATS JetStream, so names and shapes are stable
//! contracts: a change needs a new [`SCHEMA_VERSION`] and a reader for the old one.
//!
//! A participant depends on this crate only, never on the orchestrator.
//!
//! ```
//! use saga_protocol::{subjects, CommandEnvelope, CommandKind, MessageId};
//! use uuid::Uuid;
//!
//! let saga_id = Uuid::nil();
//! let id = MessageId::command(saga_id, "reserve_credit", 1, CommandKind::Forward);
//! assert_eq!(id.as_str(), "00000000-0000-0000-0000-000000000000.reserve_credit.1.do");
//! assert_eq!(subjects::command("account", "ReserveCredit"), "saga.cmd.account.ReserveCredit");
//! ```

#[cfg(feature = "jetstream")]
pub mod auth;
mod envelope;
pub mod limits;
mod message_id;
pub mod subjects;
mod time;
pub mod upcast;

pub use envelope::{
    CommandEnvelope, CommandKind, DecodeError, Outcome, ReplyEnvelope, SCHEMA_VERSION,
};
pub use message_id::MessageId;
pub use time::Timestamp;

/// Header names carried on every JetStream message of the protocol.
pub mod headers {
    /// JetStream's own de-duplication header; always equal to the envelope's message id.
    pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
    /// Why a message was dead-lettered.
    pub const DLQ_REASON: &str = "Saga-Dlq-Reason";
    /// The subject a dead-lettered message was first published on.
    pub const DLQ_ORIGINAL_SUBJECT: &str = "Saga-Dlq-Subject";
    /// The stream sequence of the dead-lettered message in its original stream.
    pub const DLQ_ORIGINAL_SEQUENCE: &str = "Saga-Dlq-Sequence";
    /// The consumer that refused the message.
    pub const DLQ_CONSUMER: &str = "Saga-Dlq-Consumer";
    /// W3C trace context of the span that published the message (commands, replies, dead
    /// letters), when tracing is on: `00-{trace id}-{span id}-{flags}`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C vendor trace state, next to `traceparent` when there is one.
    pub const TRACESTATE: &str = "tracestate";
}

#[cfg(feature = "jetstream")]
pub mod consumers;
#[cfg(feature = "jetstream")]
pub mod dead_letter;
#[cfg(feature = "jetstream")]
pub mod inbound;
#[cfg(feature = "jetstream")]
pub mod retry;
#[cfg(feature = "jetstream")]
pub mod servers;
#[cfg(feature = "jetstream")]
pub mod streams;
#[cfg(feature = "jetstream")]
pub mod tls;
