//! Overdue sagas: still running or compensating `overdue_after` past their deadline (or past
//! their start, when their definition has none). Nothing in the saga's own logic ends one
//! that waits on a participant that never answers and never times out for good (a pivot and
//! the steps after it retry until they succeed), so the runtime says which ones run on: the
//! API flags them (`overdue` in a saga's status and in lists, `GET /v1/sagas?overdue=true`),
//! the web UI shows them, and the `saga_overdue` gauge counts them for an alert.
//!
//! ```
//! # use saga_orchestrator::runtime::{Options, overdue_before};
//! # use saga_protocol::Timestamp;
//! let options = Options::default(); // overdue 5 minutes past the deadline or start
//! assert_eq!(overdue_before(&options, Timestamp(400_000)), Timestamp(100_000));
//! ```

use super::{Options, Orchestrator};
use crate::store::EventStore;
use crate::transport::Transport;
use saga_core::Status;
use saga_protocol::Timestamp;

/// The time before which a saga's deadline (or start) makes it overdue at `now`.
pub fn overdue_before(options: &Options, now: Timestamp) -> Timestamp {
    now.minus(options.overdue_after)
}

/// The statuses in which a saga can be overdue: those in which it still acts by itself.
pub fn overdue_statuses() -> Vec<&'static str> {
    Status::ACTIVE.iter().map(|s| s.as_str()).collect()
}

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Whether a saga in `status`, due by `deadline_at` (or, without one, started at
    /// `created_at`), is overdue at `now`.
    pub fn is_overdue(
        &self,
        status: &str,
        deadline_at: Option<Timestamp>,
        created_at: Timestamp,
        now: Timestamp,
    ) -> bool {
        overdue_statuses().contains(&status)
            && deadline_at.unwrap_or(created_at) < overdue_before(self.options(), now)
    }
}
