//! Retention: a finished saga leaves the hot tables for the archive once it has been
//! finished for `--retention` (and its idempotency key's window has passed), so the tables the
//! runtime works on hold what is in flight and what finished recently, however long the
//! system runs. An archived saga is still shown whole by the API and `saga history`, and its
//! events stay in the feed (see [`crate::store::Archive`]).
//!
//! Only final sagas are moved (completed, compensated, aborted): a running, compensating or
//! stuck saga is never touched, whatever its age. Every replica sweeps; the store's claim
//! makes two sweeps at once move each saga once.

use super::{Orchestrator, Result};
use crate::store::{EventStore, Retire};
use crate::transport::Transport;
use saga_core::Status;
use std::time::Duration;

/// How long a finished saga stays in the hot tables unless set otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Sagas moved per transaction of a sweep.
const PAGE: u32 = 500;

/// The statuses a sweep may move: those not even an operator can change.
const FINAL: [Status; 3] = [Status::Completed, Status::Compensated, Status::Aborted];

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Archives every saga finished longer than the retention window ago whose idempotency
    /// window has passed too, page by page; returns how many it moved. Nothing with a
    /// retention of zero (off).
    pub async fn archive_finished(&self) -> Result<u64> {
        let retention = self.options().retention;
        if retention.is_zero() {
            return Ok(0);
        }
        let statuses: Vec<&str> = FINAL.iter().map(|s| s.as_str()).collect();
        let now = self.now();
        let retire = Retire {
            statuses: &statuses,
            ended_before: now.minus(retention),
            created_before: now.minus(self.options().idempotency_window),
            limit: PAGE,
        };
        let mut moved = 0;
        loop {
            let page = self.store.archive(&retire, now).await?;
            for id in &page {
                self.hot.forget(*id);
            }
            moved += page.len() as u64;
            self.metrics.archived.add(page.len() as u64, &[]);
            if page.len() < PAGE as usize {
                return Ok(moved);
            }
        }
    }

    /// Archives what is due every [`sweep_interval`] until `stop`.
    pub(super) async fn keep_archiving(self, stop: impl Future<Output = ()> + Send) {
        let mut ticks = tokio::time::interval(sweep_interval(self.options().retention));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => match self.archive_finished().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(archived = n, "archived finished sagas"),
                    // Retried at the next tick: the database may be away for a while.
                    Err(e) => tracing::warn!(error = %e, "archiving finished sagas failed"),
                },
            }
        }
    }
}

/// How often a replica sweeps: a tenth of the retention window, between 100 ms and a minute,
/// so a saga is archived at most that long after its window has passed.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_runs_a_tenth_of_the_window_apart_within_bounds() {
        assert_eq!(sweep_interval(DEFAULT_RETENTION), Duration::from_secs(60));
        assert_eq!(
            sweep_interval(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }
}
