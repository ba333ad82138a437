//! How long a participant keeps its inbox, and why pruning it never lets a command apply
//! twice.
//!
//! The inbox must remember a message id for as long as that message can be delivered again.
//! JetStream redelivers an unacked command, and the orchestrator republishes the commands of a
//! saga in flight with their ids unchanged for as long as the saga runs, so no fixed time
//! bounds redelivery by itself. The bound is enforced here instead: a command whose `sent_at`
//! (when the orchestrator decided it, the same in every copy) is more than `window` ago, and
//! that the inbox does not know, is not applied but dead-lettered with the reason
//! ([`Error::Expired`]). An inbox entry is pruned once it was received more than
//! `window + 2 × max_clock_skew` ago. Then every copy of its command arriving later is refused:
//! with every clock within `max_clock_skew` of the true time, the command was sent before
//! `received_at + 2 × skew` by the clock of whoever checks it, so more than `window` ago.
//! A copy that finds its entry still there gets the recorded reply, however old.
//!
//! A command refused this way leaves its saga waiting (and flagged overdue): raise the window
//! above the longest a saga may wait for a participant.

use crate::participant::Error;
use crate::store::Store;
use saga_protocol::{CommandEnvelope, Timestamp};
use std::time::Duration;

/// How long a command may take to be applied, and its inbox entry is kept, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far any clock (the orchestrator's, each participant instance's) may be off, by default.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Inbox entries deleted per statement of a prune.
const PAGE: u32 = 1_000;

/// The inbox's window (see the module docs). A zero window keeps every entry and refuses no
/// command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxWindow {
    pub window: Duration,
    pub max_clock_skew: Duration,
}

impl Default for InboxWindow {
    fn default() -> Self {
        InboxWindow {
            window: DEFAULT_WINDOW,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

impl InboxWindow {
    /// [`Error::Expired`] if `command`, not in the inbox, was sent too long before `now` to be
    /// applied: its inbox entry may have been pruned.
    pub fn check(&self, command: &CommandEnvelope, now: Timestamp) -> Result<(), Error> {
        if self.window.is_zero() || now.since(command.sent_at) <= self.window {
            return Ok(());
        }
        Err(Error::Expired(format!(
            "command {} was sent at {}, more than the inbox window ({}) ago, and is not in \
             the inbox: its record may have been pruned, so it is not applied",
            command.message_id,
            command.sent_at,
            humantime::format_duration(self.window)
        )))
    }

    /// Entries received before this may be pruned at `now`; `None` with a zero window.
    pub fn prune_before(&self, now: Timestamp) -> Option<Timestamp> {
        if self.window.is_zero() {
            return None;
        }
        let keep = self
            .window
            .saturating_add(self.max_clock_skew.saturating_mul(2));
        Some(now.minus(keep))
    }

    /// How often an instance prunes: a tenth of the window, between 100 ms and an hour.
    pub fn prune_every(&self) -> Duration {
        (self.window / 10).clamp(Duration::from_millis(100), Duration::from_secs(3_600))
    }
}

/// Deletes the inbox entries of `store` that its window lets go at `now`; returns how many.
pub async fn prune(store: &Store, now: Timestamp) -> Result<u64, sqlx::Error> {
    let Some(before) = store.inbox_window().prune_before(now) else {
        return Ok(0);
    };
    let mut pruned = 0;
    loop {
        // On the index of received_at (migrations/*/0002); a page per statement keeps each
        // transaction short beside the commands being handled.
        let done = sqlx::query(
            "DELETE FROM inbox WHERE message_id IN \
             (SELECT message_id FROM inbox WHERE received_at < $1 LIMIT $2)",
        )
        .bind(before.millis())
        .bind(i64::from(PAGE))
        .execute(store.pool())
        .await?;
        pruned += done.rows_affected();
        if done.rows_affected() < u64::from(PAGE) {
            return Ok(pruned);
        }
    }
}

/// Prunes `store`'s inbox every [`InboxWindow::prune_every`] until `stop`.
pub(crate) async fn keep_pruning(
    store: Store,
    pruned: crate::metrics::Pruned,
    stop: impl Future<Output = ()> + Send,
) {
    let window = store.inbox_window();
    if window.window.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(window.prune_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => match prune(&store, Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => {
                    pruned.count(n);
                    tracing::info!(pruned = n, "pruned inbox entries past their window");
                }
                // Tried again at the next tick: the database may be away for a while.
                Err(e) => tracing::warn!(error = %e, "pruning the inbox failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_pruned_only_after_the_window_and_twice_the_skew() {
        let w = InboxWindow {
            window: Duration::from_secs(100),
            max_clock_skew: Duration::from_secs(5),
        };
        assert_eq!(
            w.prune_before(Timestamp(1_000_000)),
            Some(Timestamp(890_000))
        );
        let off = InboxWindow {
            window: Duration::ZERO,
            ..w
        };
        assert_eq!(off.prune_before(Timestamp(1_000_000)), None);
        assert_eq!(w.prune_every(), Duration::from_secs(10));
    }
}
