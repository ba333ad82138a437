//! Recovery: publishing again the commands of sagas that went quiet (at start-up, all active
//! sagas), and arming their timers again. Safe to repeat: the commands keep their ids, so
//! JetStream and the participants' inboxes drop the copies.

use super::{Error, Orchestrator, Result};
use crate::store::EventStore;
use saga_core::Status;
use saga_protocol::Timestamp;
use saga_telemetry::saga::SagaTrace;
use std::time::Duration;
use uuid::Uuid;

impl<S: EventStore> Orchestrator<S> {
    /// Publishes again the in-flight commands of every active saga whose last event is
    /// older than `quiet_for` (all of them with `Duration::ZERO`, as at start-up), and arms
    /// their pending timers (timeouts, retries, deadlines) again.
    /// Returns how many commands were published.
    pub async fn recover(&self, quiet_for: Duration) -> Result<usize> {
        let active: Vec<&str> = Status::ACTIVE.iter().map(|s| s.as_str()).collect();
        let ids = self.store.with_status(&active).await?;
        let now = Timestamp::now();
        let mut published = 0;
        let mut tasks = tokio::task::JoinSet::new();
        for id in ids {
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
        self.transport
            .publish_all(&commands, trace.as_ref())
            .await?;
        Ok(commands.len())
    }
}

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
