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
/// NATS away (restarting, not reachable yet) or a JetStream cluster still forming (a meta
/// leader being elected, peers joining, every process of a system starting at once) is waited
/// out with [`crate::retry::backoff`] for as long as it lasts. Any other error (a stream that
/// exists with settings that conflict, say) is returned at once.
///
/// # Cancel safety
/// Dropping the future stops the retries; streams created so far stay.
pub async fn ensure(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), jetstream::context::CreateStreamError> {
    crate::retry::transient(
        "create the JetStream streams",
        || ensure_once(js, replicas),
        is_transient,
    )
    .await
}

/// Whether a JetStream API error is one that trying again later may cure: a timeout (NATS
/// away or busy), JetStream not available yet, or a cluster still forming.
pub fn is_transient_code(error: &jetstream::Error) -> bool {
    use jetstream::ErrorCode;
    [
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::CLUSTER_NOT_ACTIVE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::INSUFFICIENT_RESOURCES,
    ]
    .contains(&error.error_code())
}

fn is_transient(error: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::context::CreateStreamErrorKind as Kind;
    match error.kind() {
        Kind::TimedOut | Kind::JetStreamUnavailable | Kind::Response => true,
        Kind::JetStream(e) => is_transient_code(&e),
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
