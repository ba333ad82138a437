//! Where the runtime and the API read the time: the seam that lets the runtime run on tokio's
//! paused clock in tests.
//!
//! Every decision is made at a time the runtime reads once and records with the events it
//! decides (the core never reads a clock). In production that is the wall clock
//! ([`SystemClock`]); tests use a [`TokioClock`], which moves with tokio's clock, so that
//! under `#[tokio::test(start_paused = true)]` timeouts, retries and deadlines fall due as the
//! paused clock advances, in no real time at all.
//!
//! ```
//! use saga_orchestrator::clock::{Clock, TokioClock};
//! use saga_protocol::Timestamp;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let clock = TokioClock::starting_at(Timestamp(1_000));
//! tokio::time::sleep(std::time::Duration::from_secs(5)).await;
//! assert_eq!(clock.now(), Timestamp(6_000));
//! # }
//! ```

use saga_protocol::Timestamp;
use std::fmt::Debug;

/// A source of the current time.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> Timestamp;
}

/// A shared clock is a clock (so one can be handed on, as from one orchestrator to another).
impl Clock for std::sync::Arc<dyn Clock> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The wall clock of this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that starts at a given time and moves with tokio's clock: paused, it moves only as
/// tokio's paused clock advances (by `tokio::time::advance`, or by itself when every task
/// waits on a timer).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Timestamp,
    at: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: Timestamp) -> Self {
        TokioClock {
            start,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start.plus(self.at.elapsed())
    }
}
