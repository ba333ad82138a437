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

/// Why a durable pull consumer could not be set up. Transient faults never end up here:
/// [`ensure`] waits them out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open stream {stream}: {source}")]
    Stream {
        stream: String,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    #[error("cannot create consumer {name}: {source}")]
    Consumer {
        name: String,
        #[source]
        source: jetstream::stream::ConsumerError,
    },
}

/// Creates the durable pull consumer `config` on stream `stream`, or updates it when it
/// exists with other settings (a new ack wait, say), so a changed failover bound takes effect
/// on an existing deployment. Every process sharing the consumer sends the same configuration.
///
/// NATS away or a cluster still forming is waited out ([`crate::retry`]); an error that
/// trying again cannot cure (a conflicting consumer, a bad name) is returned.
///
/// # Cancel safety
/// Dropping the future stops the retries.
pub async fn ensure(
    js: &jetstream::Context,
    stream: &str,
    config: pull::Config,
) -> Result<PullConsumer, Error> {
    let name = config.durable_name.clone().unwrap_or_default();
    let what = format!("create consumer {name} on stream {stream}");
    crate::retry::transient(
        &what,
        || ensure_once(js, stream, config.clone()),
        is_transient,
    )
    .await
}

pub(crate) async fn ensure_once(
    js: &jetstream::Context,
    stream: &str,
    config: pull::Config,
) -> Result<PullConsumer, Error> {
    let name = config.durable_name.clone().unwrap_or_default();
    let handle = js
        .get_stream_no_info(stream)
        .await
        .map_err(|source| Error::Stream {
            stream: stream.to_string(),
            source,
        })?;
    handle
        .create_consumer(config)
        .await
        .map_err(|source| Error::Consumer { name, source })
}

fn is_transient(error: &Error) -> bool {
    use jetstream::context::GetStreamErrorKind as StreamKind;
    use jetstream::stream::ConsumerErrorKind as Kind;
    match error {
        Error::Stream { source, .. } => match source.kind() {
            StreamKind::Request => true,
            StreamKind::JetStream(e) => crate::streams::is_transient_code(&e),
            _ => false,
        },
        Error::Consumer { source, .. } => match source.kind() {
            Kind::TimedOut | Kind::Request => true,
            Kind::JetStream(e) => crate::streams::is_transient_code(&e),
            _ => false,
        },
    }
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
    matches!(
        error.kind(),
        Kind::MissingHeartbeat | Kind::NoResponders | Kind::ConsumerDeleted
    )
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
