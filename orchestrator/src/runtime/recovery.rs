//! Recovery: publishing again the commands of sagas that went quiet (for half the failover
//! bound in a partition this replica takes over, at start-up too; for `--republish-after` in
//! the partitions it owns), and arming their timers again.
//! Safe to repeat: the commands keep their ids, so JetStream and the participants' inboxes
//! drop the copies. And the owner's poll of the timers that fall due (`due_at`).

use super::partitions::partition_of;
use super::{Error, Orchestrator, Result};
use crate::store::EventStore;
use crate::transport::Transport;
use saga_core::Status;
use saga_protocol::Timestamp;
use saga_telemetry::saga::SagaTrace;
use std::time::Duration;
use uuid::Uuid;

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Publishes again the in-flight commands of every active saga in a partition this
    /// replica owns whose last event is older than `quiet_for`, and arms their pending
    /// timers (timeouts, retries, deadlines) again. Returns how many commands were published.
    pub async fn recover(&self, quiet_for: Duration) -> Result<usize> {
        let ownership = self.ownership.clone();
        self.recover_where(quiet_for, move |id| ownership.owns(id))
            .await
    }

    /// [`Orchestrator::recover`] of the active sagas in `partitions` quiet for half the
    /// failover bound: what a replica does when it takes partitions over.
    ///
    /// A replica that died between an append and its publish left its saga quiet since then.
    /// Its leases lapse a bound after its last renewal, which was at most a third of a bound
    /// before it died, so such a saga is quiet for at least two thirds of the bound when
    /// another replica gains its partition. Sagas that moved more recently are in hand
    /// elsewhere; their timers reach the new owner through `due_at`.
    pub async fn recover_partitions(&self, partitions: &[u16]) -> Result<usize> {
        let partitions: std::collections::BTreeSet<u16> = partitions.iter().copied().collect();
        let quiet_for = self.failover_bound() / 2;
        self.recover_where(quiet_for, move |id| partitions.contains(&partition_of(id)))
            .await
    }

    async fn recover_where(
        &self,
        quiet_for: Duration,
        chosen: impl Fn(Uuid) -> bool,
    ) -> Result<usize> {
        let active: Vec<&str> = Status::ACTIVE.iter().map(|s| s.as_str()).collect();
        let now = self.now();
        // Only the quiet ones are loaded; each is checked again once loaded, since it may
        // have moved on in between.
        let ids = self.store.quiet(&active, now.minus(quiet_for)).await?;
        let mut published = 0;
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids.into_iter().filter(|id| chosen(*id)) {
            // At most 16 sagas re-published at a time, so a long backlog does not flood NATS.
            if tasks.len() >= 16 {
                published += join_one(&mut tasks).await?;
            }
            let this = self.clone();
            tasks.spawn(async move { this.republish(id, now, quiet_for).await });
        }
        while !tasks.is_empty() {
            published += join_one(&mut tasks).await?;
        }
        Ok(published)
    }

    /// Publishes saga `id`'s in-flight commands again, and arms its timers, if it has been
    /// quiet for `quiet_for`.
    async fn republish(&self, id: Uuid, now: Timestamp, quiet_for: Duration) -> Result<usize> {
        let loaded = self.load(id).await?;
        if now.since(loaded.record.updated_at) < quiet_for {
            return Ok(0);
        }
        for at in loaded.state.timers() {
            self.timers.schedule(id, at);
        }
        let commands: Vec<_> = loaded.state.in_flight().collect();
        let trace = loaded
            .state
            .trace_context
            .as_deref()
            .and_then(SagaTrace::parse);
        self.transport.publish(&commands, trace.as_ref()).await?;
        Ok(commands.len())
    }

    /// Arms the timers of the sagas this replica owns that fall due by `until`, as the read
    /// model's `due_at` says, whoever armed them: another replica, or one that died. Returns
    /// the `(saga, due at)` pairs seen, so the next call arms only what is new.
    pub(super) async fn arm_due(
        &self,
        until: Timestamp,
        seen: &std::collections::HashSet<(Uuid, Timestamp)>,
    ) -> Result<std::collections::HashSet<(Uuid, Timestamp)>> {
        let due = self.store.due(until, DUE_PER_POLL).await?;
        let mut now_seen = std::collections::HashSet::with_capacity(due.len());
        for (id, at) in due {
            if !self.ownership.owns(id) {
                continue;
            }
            if !seen.contains(&(id, at)) {
                self.timers.schedule(id, at);
            }
            now_seen.insert((id, at));
        }
        Ok(now_seen)
    }
}

/// Most due timers read by one poll; more wait for the next.
const DUE_PER_POLL: u32 = 1_000;

async fn join_one(tasks: &mut tokio::task::JoinSet<Result<usize>>) -> Result<usize> {
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(Error::Corrupt {
            saga_id: Uuid::nil(),
            reason: format!("re-publish task failed: {e}"),
        }),
        None => Ok(0),
    }
}
