//! The protocol's durable pull consumers, and how long a dead process can hold their work.
//!
//! One setting, the failover bound (`--failover-after`, default [`DEFAULT_FAILOVER_AFTER`]),
//! bounds every wait that a process's death or a NATS node's death can cause a consumer:
//!
//! - **ack wait**: a message delivered to a process that dies unacked is delivered again,
//!   to another process sharing the consumer, after this long. A process that is still
//!   working on a message says so ([`in_progress`]) so that a slow message is not delivered
//!   twice.
//! - **pull expiry and heartbeat**: a pull request lives this long, and the server sends an
//!   idle heartbeat every [`heartbeat`]. When the node leading a consumer dies, its waiting
//!   pull requests die with it; the client notices the missing heartbeats and pulls again
//!   ([`must_pull_again`]) instead of waiting for requests that will never be answered.
//!
//! ```
//! use std::time::Duration;
//! let every = saga_protocol::consumers::heartbeat(Duration::from_secs(5));
//! assert_eq!(every, Duration::from_millis(1250));
//! ```

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull};
use std::future::Future;
use std::time::Duration;

/// Default failover bound: how long a dead process can hold a message or a pull request.
pub const DEFAULT_FAILOVER_AFTER: Duration = Duration::from_secs(5);
/// The shortest failover bound accepted: JetStream needs a pull request to live at least a
/// second, with a heartbeat below half of that.
pub const MIN_FAILOVER_AFTER: Duration = Duration::from_secs(1);

/// The server's idle heartbeat on a pull request for failover bound `bound`: four per bound,
/// so two missed ones are noticed well within it.
pub fn heartbeat(bound: Duration) -> Duration {
    bound.max(MIN_FAILOVER_AFTER) / 4
}

/// Creates the durable pull consumer `config` on `stream`, or updates it when it exists with
/// other settings (a new ack wait, say), so a changed failover bound takes effect on an
/// existing deployment. Every process sharing the consumer sends the same configuration.
pub async fn ensure(
    stream: &jetstream::stream::Stream,
    config: pull::Config,
) -> Result<PullConsumer, jetstream::stream::ConsumerError> {
    stream.create_consumer(config).await
}

/// A stream of messages from `consumer`, at most `batch` pulled ahead, with pull requests that
/// expire after `bound` and idle heartbeats every [`heartbeat`]`(bound)`.
pub async fn pull(
    consumer: &PullConsumer,
    batch: usize,
    bound: Duration,
) -> Result<pull::Stream, jetstream::consumer::StreamError> {
    let bound = bound.max(MIN_FAILOVER_AFTER);
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .expires(bound)
        .heartbeat(heartbeat(bound))
        .messages()
        .await
}

/// Whether `error` from a message stream means its pull requests are lost (the node that
/// held them died), so the stream must be replaced by a new [`pull`]. The client otherwise
/// waits for the requests' expiry and five seconds more before it asks again.
pub fn must_pull_again(error: &jetstream::consumer::pull::MessagesError) -> bool {
    use jetstream::consumer::pull::MessagesErrorKind as Kind;
    matches!(error.kind(), Kind::MissingHeartbeat | Kind::NoResponders)
}

/// Runs `work` for `message`, telling JetStream every third of `ack_wait` that the message is
/// still being worked on, so it is not delivered again elsewhere while this process lives.
pub async fn in_progress<F: Future>(
    message: &jetstream::Message,
    ack_wait: Duration,
    work: F,
) -> F::Output {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            output = &mut work => return output,
            _ = ticks.tick() => {
                // Best effort: when it is lost, the message is delivered again and the
                // receiver recognises it as a duplicate.
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}
