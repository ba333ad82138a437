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
pub const SNAPSHOT_SCHEMA: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Step {
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

#[derive(Serialize, Deserialize)]
struct State {
    saga_id: Uuid,
    name: String,
    definition_version: u32,
    definition_hash: Option<String>,
    input: serde_json::Value,
    status: Status,
    version: u64,
    steps: Vec<Step>,
    reason: Option<String>,
    started_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    deadline_at: Option<Timestamp>,
    stuck_on: Option<(String, CommandKind)>,
    stalled: Option<CommandKind>,
    trace_context: Option<String>,
    answered: BTreeSet<MessageId>,
}

/// The snapshot of `state`, at schema [`SNAPSHOT_SCHEMA`].
pub fn encode(state: &SagaState) -> serde_json::Value {
    let s = state.clone();
    let steps = s
        .steps
        .into_iter()
        .map(|t| Step {
            name: t.name,
            attempt: t.attempt,
            status: t.status,
            output: t.output,
            reason: t.reason,
            started_at: t.started_at,
            ended_at: t.ended_at,
            compensation_attempt: t.compensation_attempt,
            timeout_at: t.timeout_at,
            retry_at: t.retry_at,
            retry_kind: t.retry_kind,
            pending: t.pending,
            signal: t.signal,
        })
        .collect();
    let encoded = State {
        saga_id: s.saga_id,
        name: s.name,
        definition_version: s.definition_version,
        definition_hash: s.definition_hash,
        input: s.input,
        status: s.status,
        version: s.version,
        steps,
        reason: s.reason,
        started_at: s.started_at,
        updated_at: s.updated_at,
        deadline_at: s.deadline_at,
        stuck_on: s.stuck_on,
        stalled: s.stalled,
        trace_context: s.trace_context,
        answered: s.answered,
    };
    // Every field is plain data (strings, numbers, JSON values): it always encodes.
    serde_json::to_value(encoded).unwrap_or(serde_json::Value::Null)
}

/// The state a snapshot of schema `schema` holds, or why it cannot be read (then fold the
/// log from the start).
pub fn decode(snapshot: &serde_json::Value, schema: u32) -> Result<SagaState, String> {
    if schema != SNAPSHOT_SCHEMA {
        return Err(format!(
            "snapshot schema {schema}, this build reads {SNAPSHOT_SCHEMA}"
        ));
    }
    let s: State = serde_json::from_value(snapshot.clone()).map_err(|e| e.to_string())?;
    let steps = s
        .steps
        .into_iter()
        .map(|t| StepState {
            name: t.name,
            attempt: t.attempt,
            status: t.status,
            output: t.output,
            reason: t.reason,
            started_at: t.started_at,
            ended_at: t.ended_at,
            compensation_attempt: t.compensation_attempt,
            timeout_at: t.timeout_at,
            retry_at: t.retry_at,
            retry_kind: t.retry_kind,
            pending: t.pending,
            signal: t.signal,
        })
        .collect();
    Ok(SagaState {
        saga_id: s.saga_id,
        name: s.name,
        definition_version: s.definition_version,
        definition_hash: s.definition_hash,
        input: s.input,
        status: s.status,
        version: s.version,
        steps,
        reason: s.reason,
        started_at: s.started_at,
        updated_at: s.updated_at,
        deadline_at: s.deadline_at,
        stuck_on: s.stuck_on,
        stalled: s.stalled,
        trace_context: s.trace_context,
        answered: s.answered,
    })
}
