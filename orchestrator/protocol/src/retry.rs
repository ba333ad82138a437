//! Waiting out transient faults: the one backoff policy of every start-up step and every loop
//! that talks to NATS or a database, in the orchestrator and in the participants.
//!
//! NATS restarting, a JetStream cluster electing a leader, PostgreSQL restarting: each is an
//! ordinary operational event, not a reason for a process to exit. A step that fails with a
//! transient error is tried again, after an exponential backoff with jitter (so replicas
//! restarted together do not retry in lockstep), for as long as it takes; each retry is logged
//! with what is being waited for. A permanent error (bad settings, a refused credential, an
//! invalid name) is returned at once, so the process can exit saying what to fix. A caller
//! that must stop on shutdown races the returned future against it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use saga_protocol::retry;
//! let mut calls = 0;
//! let answer = retry::transient(
//!     "read the answer",
//!     || {
//!         calls += 1;
//!         let result = if calls < 3 { Err("away") } else { Ok(42) };
//!         async move { result }
//!     },
//!     |e: &&str| *e == "away",
//! )
//! .await;
//! assert_eq!(answer, Ok(42));
//! # }
//! ```

use backon::{ExponentialBuilder, Retryable};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The first wait after a transient failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait between two tries: a dependency that comes back is used within this long.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// The backoff of every retry of a transient fault: [`FIRST_DELAY`] doubling up to
/// [`MAX_DELAY`], each wait jittered, with no limit on the number of tries.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
}

/// Runs `op` until it succeeds, or fails with an error that `is_transient` says is
/// permanent, which is returned. Every transient failure is logged as a warning naming
/// `what` (an infinitive: "create the reply consumer") and waited out with [`backoff`].
///
/// # Cancel safety
/// Dropping the future stops the retries; a try in progress is dropped with it.
pub async fn transient<T, E, Fut>(
    what: &str,
    op: impl FnMut() -> Fut,
    is_transient: impl FnMut(&E) -> bool,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    op.retry(backoff())
        .when(is_transient)
        .notify(|error: &E, after: Duration| {
            tracing::warn!(error = %error, retry_in = ?after, "cannot {what} yet, trying again");
        })
        .await
}
