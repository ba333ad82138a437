//! Loading a saga for a decision from its snapshot and the events after it, and taking
//! snapshots as its log grows (every [`Options::snapshot_every`](super::Options) events).
//!
//! A snapshot is only a cache. One that cannot be used (another schema, a definition hash
//! that is not the state's, a version the record has not reached, a state that does not
//! decode) is passed over and the whole log is folded, as it is without snapshots; a
//! snapshot that cannot be stored is logged and the saga goes on.

use super::{Orchestrator, Result, decode_all, hot};
use crate::store::{EventStore, Snapshot, StoredEvent};
use crate::transport::Transport;
use saga_core::{SagaState, snapshot};
use saga_protocol::Timestamp;
use serde_json::json;
use uuid::Uuid;

fn stuck_in(events: &[StoredEvent]) -> bool {
    events.iter().any(|e| e.event_type == "SagaStuck")
}

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// The saga's state for a decision: from its snapshot and the events after it when it
    /// has a usable one, else folded from its whole log.
    pub(super) async fn load_hot(&self, saga_id: Uuid) -> Result<hot::Hot> {
        if self.options.snapshot_every > 0
            && let Some(hot) = self.resume_snapshot(saga_id).await?
        {
            return Ok(hot);
        }
        let loaded = self.load(saga_id).await?;
        Ok(hot::Hot {
            was_stuck: stuck_in(&loaded.events),
            state: loaded.state,
        })
    }

    /// The state a decision on the saga starts from when it is not hot: its snapshot with
    /// the events after it folded on, or its whole log folded. Always equal to the fold of
    /// the whole log ([`Orchestrator::load`]); only the cost differs.
    pub async fn decision_state(&self, saga_id: Uuid) -> Result<SagaState> {
        Ok(self.load_hot(saga_id).await?.state)
    }

    async fn resume_snapshot(&self, saga_id: Uuid) -> Result<Option<hot::Hot>> {
        let Some(taken) = self.store.snapshot(saga_id).await? else {
            return Ok(None);
        };
        let state = match snapshot::decode(&taken.state["state"], taken.schema_version) {
            Ok(state)
                if state.version == taken.version
                    && state.definition_hash == taken.definition_hash =>
            {
                state
            }
            Ok(_) => {
                tracing::warn!(%saga_id, "a snapshot that disagrees with itself, passed over");
                return Ok(None);
            }
            Err(reason) => {
                tracing::debug!(%saga_id, %reason, "snapshot passed over");
                return Ok(None);
            }
        };
        let Some((record, tail)) = self.store.load_after(saga_id, taken.version).await? else {
            return Ok(None);
        };
        if record.version < taken.version {
            return Ok(None);
        }
        let occurred = decode_all(saga_id, &tail)?;
        let was_stuck = taken.state["was_stuck"].as_bool().unwrap_or(true) || stuck_in(&tail);
        let state = occurred.iter().fold(state, saga_core::evolve);
        Ok(Some(hot::Hot { state, was_stuck }))
    }

    /// Stores a snapshot of `state`, just appended at `now`.
    pub(super) async fn take_snapshot(&self, state: &SagaState, was_stuck: bool, now: Timestamp) {
        let taken = Snapshot {
            saga_id: state.saga_id,
            version: state.version,
            schema_version: snapshot::SNAPSHOT_SCHEMA,
            definition_hash: state.definition_hash.clone(),
            state: json!({ "state": snapshot::encode(state), "was_stuck": was_stuck }),
            taken_at: now,
        };
        if let Err(e) = self.store.put_snapshot(taken).await {
            tracing::warn!(saga_id = %state.saga_id, error = %e, "snapshot not stored; the log is folded instead");
        }
    }
}
