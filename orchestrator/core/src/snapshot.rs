//! Snapshots of a saga's state: the fold of its first N events, kept so that loading the saga
//! folds only the events after them.
//!
//! A snapshot is a cache. The log stays the truth: a snapshot of another schema than
//! [`SNAPSHOT_SCHEMA`], or one that does not decode, is not read and the log is folded from
//! the start instead, so dropping every snapshot changes nothing but the time a load takes.
//! It holds every field of the state, unlike the state's `Serialize` (made for views and
//! snapshot tests, which leaves out what only the runtime needs: the commands in flight, the
//! replies already answered, the way a stalled saga was going).
//!
//! ```
//! use saga_core::{SagaState, snapshot};
//! use uuid::Uuid;
//!
//! let state = SagaState::new(Uuid::nil());
//! let taken = snapshot::encode(&state);
//! assert_eq!(snapshot::decode(&taken, snapshot::SNAPSHOT_SCHEMA).unwrap(), state);
//! ```

use crate::state::{SagaState, Status, StepState, StepStatus};
use saga_protocol::{CommandEnvelope, CommandKind, MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The shape of the snapshots this build writes and reads. Raise it whenever [`SagaState`]
/// changes shape: older snapshots are then ignored, and rewritten as sagas go on.
pub const SNAPSHOT_SCHEMA: u32 = 2;

/// Every field of a step, through serde's remote derive: a field added to [`StepState`] and
/// not here fails to compile.
#[derive(Serialize, Deserialize)]
#[serde(remote = "StepState")]
struct StepDef {
    name: String,
    attempt: u32,
    status: StepStatus,
    output: Option<serde_json::Value>,
    reason: Option<String>,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    compensation_attempt: u32,
    timeout_at: Option<Timestamp>,
    retry_at: Option<Timestamp>,
    retry_kind: Option<CommandKind>,
    pending: Option<CommandEnvelope>,
    signal: Option<String>,
}

/// Every field of the state, as [`StepDef`] is of a step.
#[derive(Serialize, Deserialize)]
#[serde(remote = "SagaState")]
struct StateDef {
    saga_id: Uuid,
    name: String,
    definition_version: u32,
    definition_hash: Option<String>,
    input: serde_json::Value,
    status: Status,
    version: u64,
    #[serde(with = "steps")]
    steps: Vec<StepState>,
    reason: Option<String>,
    started_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    deadline_at: Option<Timestamp>,
    stuck_on: Option<(String, CommandKind)>,
    stalled: Option<CommandKind>,
    trace_context: Option<String>,
    answered: BTreeSet<MessageId>,
    decided: BTreeSet<MessageId>,
    succeeded_late: BTreeSet<String>,
}

/// The steps, each through [`StepDef`].
mod steps {
    use super::{StepDef, StepState};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Ref<'a>(#[serde(with = "StepDef")] &'a StepState);

    #[derive(Deserialize)]
    struct Owned(#[serde(with = "StepDef")] StepState);

    pub fn serialize<S: Serializer>(steps: &[StepState], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(steps.iter().map(Ref))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<StepState>, D::Error> {
        let steps = Vec::<Owned>::deserialize(d)?;
        Ok(steps.into_iter().map(|Owned(step)| step).collect())
    }
}

/// The snapshot of `state`, at schema [`SNAPSHOT_SCHEMA`].
pub fn encode(state: &SagaState) -> serde_json::Value {
    // Every field is plain data (strings, numbers, JSON values): it always encodes.
    StateDef::serialize(state, serde_json::value::Serializer).unwrap_or(serde_json::Value::Null)
}

/// The state a snapshot of schema `schema` holds, or why it cannot be read (then fold the
/// log from the start).
pub fn decode(snapshot: &serde_json::Value, schema: u32) -> Result<SagaState, String> {
    if schema != SNAPSHOT_SCHEMA {
        return Err(format!(
            "snapshot schema {schema}, this build reads {SNAPSHOT_SCHEMA}"
        ));
    }
    StateDef::deserialize(snapshot).map_err(|e| e.to_string())
}
