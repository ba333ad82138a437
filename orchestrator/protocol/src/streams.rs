//! Creating the protocol's JetStream streams, idempotently, at every process start-up.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let js = async_nats::jetstream::new(client);
//! saga_protocol::streams::ensure(&js, 1).await?;
//! # Ok(()) }
//! ```

use crate::subjects;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// Retention of commands, replies and dead letters: long enough to inspect and replay.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// JetStream's de-duplication window for `Nats-Msg-Id`. The participants' inboxes are the
/// durable guard; this window only saves them work.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Configuration of every protocol stream with `replicas` copies (1, or 3 in a cluster).
pub fn configs(replicas: usize) -> Vec<stream::Config> {
    [
        (subjects::COMMANDS_STREAM, subjects::COMMANDS_SUBJECTS),
        (subjects::REPLIES_STREAM, subjects::REPLIES_SUBJECTS),
        (subjects::DLQ_STREAM, subjects::DLQ_SUBJECTS),
    ]
    .into_iter()
    .map(|(name, subject)| stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .collect()
}

/// Creates the streams that do not exist yet; existing streams are left as they are.
///
/// A JetStream cluster that is still forming (a meta leader being elected, peers joining,
/// every process of a system starting at once) answers with a timeout or "cluster not
/// available / no suitable peers": those are tried again with exponential backoff for about
/// half a minute before the error is returned. Any other error is returned at once.
pub async fn ensure(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), jetstream::context::CreateStreamError> {
    tryhard::retry_fn(|| ensure_once(js, replicas))
        .retries(8)
        .custom_backoff(
            |attempt: u32, error: &jetstream::context::CreateStreamError| {
                if is_forming(error) {
                    tryhard::RetryPolicy::Delay(forming_backoff(attempt))
                } else {
                    tryhard::RetryPolicy::Break
                }
            },
        )
        .await
}

/// How long to wait before try `attempt` (1, 2, …) of a request that a JetStream cluster
/// still forming refused: 0.5 s, 1 s, 2 s … up to 8 s, about half a minute over eight tries.
pub fn forming_backoff(attempt: u32) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(8))
}

/// Whether `error` is what a JetStream cluster answers while it is still forming.
fn is_forming(error: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode;
    use jetstream::context::CreateStreamErrorKind as Kind;
    match error.kind() {
        Kind::TimedOut | Kind::JetStreamUnavailable => true,
        Kind::JetStream(e) => [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NO_PEERS,
            ErrorCode::CLUSTER_NOT_ACTIVE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::INSUFFICIENT_RESOURCES,
        ]
        .contains(&e.error_code()),
        _ => false,
    }
}

async fn ensure_once(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), jetstream::context::CreateStreamError> {
    for config in configs(replicas) {
        js.get_or_create_stream(config).await?;
    }
    Ok(())
}
