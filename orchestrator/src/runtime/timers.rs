//! Durable timers, kept in memory and rebuilt from the log.
//!
//! Every timeout, retry and deadline is recorded in the saga's events (`timeout_at`,
//! `retry_at`, `deadline_at`), so this wheel holds nothing that cannot be lost: at start-up
//! the runtime arms it again from the state of every active saga. When a timer falls due the
//! saga receives an `Input::Tick`, and the pure core decides what, if anything, is due. A
//! stale timer (its step has answered since) decides nothing. Timers fall due by the reply
//! watermark ([`super::watermark`]), so a replica reading a backlog of replies does not time
//! out the steps whose answers it has yet to read.
//!
//! Each stored decision sets the saga's timers to those its new state has
//! ([`Timers::set`]): a step that answered takes its timeout with it, and a saga that ended
//! leaves nothing behind, so no tick is fired (and no saga loaded) for a timer that can decide
//! nothing. A setting from an older state than the last one seen is ignored.

use super::watermark::Watermark;
use saga_protocol::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A cheap handle to arm timers.
#[derive(Debug, Clone)]
pub struct Timers {
    tx: mpsc::UnboundedSender<Arm>,
}

#[derive(Debug)]
enum Arm {
    /// One more timer.
    Add(Timestamp, Uuid),
    /// The saga's timers as of its state at `version`, in place of those it had.
    Set {
        saga_id: Uuid,
        version: u64,
        at: Vec<Timestamp>,
    },
}

/// The receiving end, owned by the runtime loop.
#[derive(Debug)]
pub struct TimerWheel {
    rx: mpsc::UnboundedReceiver<Arm>,
    due: BTreeSet<(Timestamp, Uuid)>,
    /// Each saga with timers: the version of its last [`Arm::Set`] and its pending times
    /// (a saga without any is not held).
    armed: HashMap<Uuid, (u64, BTreeSet<Timestamp>)>,
}

/// A new timer handle and the wheel it feeds.
pub fn timers() -> (Timers, TimerWheel) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Timers { tx },
        TimerWheel {
            rx,
            due: BTreeSet::new(),
            armed: HashMap::new(),
        },
    )
}

impl Timers {
    /// Fires an `Input::Tick` for `saga_id` at `at` (at once if `at` has passed), beside its
    /// other timers.
    pub fn schedule(&self, saga_id: Uuid, at: Timestamp) {
        // The wheel only goes away with the runtime, when nothing needs timers any more.
        let _ = self.tx.send(Arm::Add(at, saga_id));
    }

    /// Replaces the timers of `saga_id` by `at`, those of its state at `version` (none: a
    /// saga that ended, or waits on nothing timed). Ignored if a later version was set.
    pub fn set(&self, saga_id: Uuid, version: u64, at: Vec<Timestamp>) {
        let _ = self.tx.send(Arm::Set {
            saga_id,
            version,
            at,
        });
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
                if let Some((_, times)) = self.armed.get_mut(&id) {
                    times.remove(&at);
                    if times.is_empty() {
                        self.armed.remove(&id);
                    }
                }
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
                    Some(arm) => self.arm(arm),
                    None => return None,
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

impl TimerWheel {
    fn arm(&mut self, arm: Arm) {
        match arm {
            Arm::Add(at, id) => {
                self.due.insert((at, id));
                self.armed.entry(id).or_default().1.insert(at);
            }
            Arm::Set {
                saga_id,
                version,
                at,
            } => {
                let (last, times) = self.armed.entry(saga_id).or_default();
                if *last > version {
                    return;
                }
                *last = version;
                for old in std::mem::take(times) {
                    self.due.remove(&(old, saga_id));
                }
                for at in &at {
                    self.due.insert((*at, saga_id));
                    times.insert(*at);
                }
                // Nothing to remember for a saga without timers: a late setting from before
                // it could only arm a timer that decides nothing.
                if at.is_empty() {
                    self.armed.remove(&saga_id);
                }
            }
        }
    }

    /// Timers held, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.due.len()
    }
}

/// How often a timer held back by the watermark is looked at again.
const HELD_BACK_POLL: Duration = Duration::from_millis(20);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn drain(wheel: &mut TimerWheel) {
        while let Ok(arm) = wheel.rx.try_recv() {
            wheel.arm(arm);
        }
    }

    #[test]
    fn a_later_state_replaces_the_timers_and_an_earlier_one_is_ignored() {
        let (timers, mut wheel) = timers();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        timers.set(a, 2, vec![Timestamp(10), Timestamp(20)]);
        timers.set(b, 1, vec![Timestamp(15)]);
        drain(&mut wheel);
        assert_eq!(wheel.len(), 3);
        // The step with the timeout at 10 answered: only the deadline at 20 is left.
        timers.set(a, 3, vec![Timestamp(20)]);
        // A decision from before (version 2) arriving late changes nothing.
        timers.set(a, 2, vec![Timestamp(10), Timestamp(20)]);
        drain(&mut wheel);
        let due: Vec<_> = wheel.due.iter().copied().collect();
        assert_eq!(due, vec![(Timestamp(15), b), (Timestamp(20), a)]);
        // The saga ended: none of its timers is left.
        timers.set(a, 4, vec![]);
        // One armed beside the state's (a failed tick tried again) is kept until the next set.
        timers.schedule(b, Timestamp(30));
        drain(&mut wheel);
        let due: Vec<_> = wheel.due.iter().copied().collect();
        assert_eq!(due, vec![(Timestamp(15), b), (Timestamp(30), b)]);
        timers.set(b, 2, vec![]);
        drain(&mut wheel);
        assert_eq!(wheel.len(), 0);
        assert!(
            wheel.armed.is_empty(),
            "nothing held for sagas without timers"
        );
    }
}
