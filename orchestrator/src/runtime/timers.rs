//! Durable timers, kept in memory and rebuilt from the log.
//!
//! Every timeout, retry and deadline is recorded in the saga's events (`timeout_at`,
//! `retry_at`, `deadline_at`), so this wheel holds nothing that cannot be lost: at start-up
//! the runtime arms it again from the state of every active saga. When a timer falls due the
//! saga receives an `Input::Tick`, and the pure core decides what, if anything, is due. A
//! stale timer (its step has answered since) decides nothing.

use saga_protocol::Timestamp;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A cheap handle to arm timers.
#[derive(Debug, Clone)]
pub struct Timers {
    tx: mpsc::UnboundedSender<(Timestamp, Uuid)>,
}

/// The receiving end, owned by the runtime loop.
#[derive(Debug)]
pub struct TimerWheel {
    rx: mpsc::UnboundedReceiver<(Timestamp, Uuid)>,
    due: BTreeSet<(Timestamp, Uuid)>,
}

/// A new timer handle and the wheel it feeds.
pub fn timers() -> (Timers, TimerWheel) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Timers { tx },
        TimerWheel {
            rx,
            due: BTreeSet::new(),
        },
    )
}

impl Timers {
    /// Fires an `Input::Tick` for `saga_id` at `at` (at once if `at` has passed).
    pub fn schedule(&self, saga_id: Uuid, at: Timestamp) {
        // The wheel only goes away with the runtime, when nothing needs timers any more.
        let _ = self.tx.send((at, saga_id));
    }
}

impl TimerWheel {
    /// Waits until a timer is due and returns the sagas due at `now`, or `None` when every
    /// handle is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: a timer received while waiting is kept in the wheel.
    pub async fn next_due(&mut self) -> Option<Vec<Uuid>> {
        loop {
            let now = Timestamp::now();
            let mut ready = Vec::new();
            while let Some(&(at, id)) = self.due.first() {
                if at > now {
                    break;
                }
                self.due.pop_first();
                ready.push(id);
            }
            if !ready.is_empty() {
                ready.sort();
                ready.dedup();
                return Some(ready);
            }
            let wait = self
                .due
                .first()
                .map_or(Duration::from_secs(3600), |(at, _)| at.since(now));
            tokio::select! {
                received = self.rx.recv() => match received {
                    Some(entry) => { self.due.insert(entry); }
                    None => return None,
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
