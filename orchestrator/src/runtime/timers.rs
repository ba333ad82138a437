//! Durable timers, kept in memory and rebuilt from the log.
//!
//! Every timeout, retry and deadline is recorded in the saga's events (`timeout_at`,
//! `retry_at`, `deadline_at`), so this wheel holds nothing that cannot be lost: at start-up
//! the runtime arms it again from the state of every active saga. When a timer falls due the
//! saga receives an `Input::Tick`, and the pure core decides what, if anything, is due. A
//! stale timer (its step has answered since) decides nothing. Timers fall due by the reply
//! watermark ([`super::watermark`]), so a replica reading a backlog of replies does not time
//! out the steps whose answers it has yet to read.

use super::watermark::Watermark;
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
    /// Waits until a timer is due by `clock` (the reply [`Watermark`]: while a backlog of
    /// replies is read, a timer waits for the replies published before it) and returns the
    /// sagas due, or `None` when every handle is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: a timer received while waiting is kept in the wheel.
    pub async fn next_due(&mut self, clock: &Watermark) -> Option<Vec<Uuid>> {
        loop {
            let wall = clock.wall();
            let now = clock.now(wall);
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
            let wait = match self.due.first() {
                None => Duration::from_secs(3600),
                // Due by the wall clock, held back by the watermark: look again shortly.
                Some((at, _)) if *at <= wall => HELD_BACK_POLL,
                Some((at, _)) => at.since(wall),
            };
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

/// How often a timer held back by the watermark is looked at again.
const HELD_BACK_POLL: Duration = Duration::from_millis(20);
