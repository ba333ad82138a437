//! Running a replica: its partition leases, the poll of the timers that fall due, the
//! archive's sweep and the reply consumer, started together and stopped in order (see [`Orchestrator::run`]).

use super::{Error, Orchestrator, Result, replies};
use crate::partitions::{self, Keeper, LeaseOptions};
use crate::store::EventStore;
use crate::transport::Transport;
use std::time::Duration;

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Runs until `shutdown` resolves: takes its share of the partition leases (recovering
    /// the sagas of each partition it gains), consumes replies, fires the timers of the
    /// sagas it owns, periodically re-publishes the commands of its sagas that went quiet, and
    /// moves the sagas finished longer than the retention window ago to the archive.
    /// When it stops it releases its leases, so the other replicas take them at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let wheel = self.wheel.lock().map_err(|_| Error::AlreadyRunning)?.take();
        let Some(wheel) = wheel else {
            return Err(Error::AlreadyRunning);
        };
        let bound = self.failover_bound();
        let (gained_tx, gained) = tokio::sync::mpsc::unbounded_channel();
        tokio::pin!(shutdown);
        // Opening the leases waits for NATS for as long as it is away: a shutdown meanwhile
        // ends the wait.
        let leases = self.transport.leases(LeaseOptions {
            replica: self
                .options
                .replica_id
                .clone()
                .unwrap_or_else(partitions::replica_id),
            bound,
            replicas: self.options.stream_replicas,
            ownership: self.ownership.clone(),
            gained: gained_tx,
        });
        let leases = tokio::select! {
            leases = leases => leases?,
            () = &mut shutdown => return Ok(()),
        };
        tracing::info!(replica = leases.replica(), "orchestrator replica starting");
        let stop = tokio_util::sync::CancellationToken::new();
        let lease_task = tokio::spawn(leases.run(stop.clone().cancelled_owned()));
        let poll_task = tokio::spawn(
            self.clone()
                .poll_due(due_poll_interval(bound), stop.clone().cancelled_owned()),
        );
        let archive_task =
            tokio::spawn(self.clone().keep_archiving(stop.clone().cancelled_owned()));
        let consumed = replies::consume(self, wheel, gained, shutdown).await;
        stop.cancel();
        let _ = archive_task.await;
        let _ = poll_task.await;
        let _ = lease_task.await;
        consumed
    }

    /// Every `every`, arms the timers of owned sagas due within two periods ([`Orchestrator::arm_due`]).
    async fn poll_due(self, every: Duration, stop: impl Future<Output = ()> + Send) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = std::collections::HashSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {
                    let until = self.now().plus(every * 2);
                    match self.arm_due(until, &seen).await {
                        Ok(now_seen) => seen = now_seen,
                        Err(e) => tracing::warn!(error = %e, "cannot read the timers due"),
                    }
                }
            }
        }
    }
}

/// How often the owner reads the timers that fall due: a tenth of the failover bound, between
/// 100 ms and 1 s. A timer armed by another replica fires at most this late.
fn due_poll_interval(bound: Duration) -> Duration {
    (bound / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
}
