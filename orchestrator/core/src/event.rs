//! Saga events: the only source of truth. Immutable, past tense, explicitly tagged.
//!
//! The tag (`type`) and the fields are stored forever: renaming one needs a new
//! [`EVENT_SCHEMA_VERSION`] and an upcaster in [`Event::decode`], never an UPDATE.

use saga_protocol::{CommandKind, MessageId, Outcome, Timestamp};
use serde::{Deserialize, Serialize};

/// Schema version written with every event by this build.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Something that happened to a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The saga was accepted with its input.
    SagaStarted {
        name: String,
        definition_version: u32,
        /// The content hash of the definition version it runs ([`crate::Definition::hash`]),
        /// the key of that version's stored source. Absent from sagas started before
        /// definitions were stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        definition_hash: Option<String>,
        input: serde_json::Value,
        /// When the forward path must be done by, from the definition's deadline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_at: Option<Timestamp>,
        /// The saga's trace as a W3C `traceparent` (`00-{trace id}-{span id}-{flags}`), when
        /// tracing was on at start: every later span of the saga, in any process and after
        /// any restart, belongs to this trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_context: Option<String>,
    },
    /// The orchestrator decided to send a step's command. Carries everything needed to
    /// publish it again, byte for byte, after a crash.
    StepStarted {
        step: String,
        attempt: u32,
        command_id: MessageId,
        participant: String,
        command: String,
        payload: serde_json::Value,
        /// When this attempt times out if no reply has come.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_at: Option<Timestamp>,
    },
    /// The participant applied the step; its output feeds later steps.
    StepSucceeded {
        step: String,
        attempt: u32,
        output: serde_json::Value,
    },
    /// The participant refused the step for a business reason.
    StepRejected {
        step: String,
        attempt: u32,
        reason: String,
    },
    /// The forward path failed: from here on the saga compensates.
    SagaFailed { step: String, reason: String },
    /// The orchestrator decided to send a step's compensation.
    CompensationStarted {
        step: String,
        attempt: u32,
        command_id: MessageId,
        participant: String,
        command: String,
        payload: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_at: Option<Timestamp>,
    },
    /// The participant undid the step (or recorded a tombstone for it).
    StepCompensated { step: String, attempt: u32 },
    /// No reply came in time: the command may or may not have been applied.
    CommandTimedOut {
        step: String,
        attempt: u32,
        kind: CommandKind,
    },
    /// The participant could not apply the command for now (a transient failure).
    CommandFailed {
        step: String,
        attempt: u32,
        kind: CommandKind,
        reason: String,
    },
    /// The command will be sent again as attempt `attempt` at `retry_at`.
    RetryScheduled {
        step: String,
        kind: CommandKind,
        attempt: u32,
        retry_at: Timestamp,
        reason: String,
    },
    /// A reply to a command that was no longer awaited (after a timeout, or after the saga
    /// moved on). Recorded, never dropped; it does not move the saga.
    LateReplyRecorded {
        step: String,
        attempt: u32,
        kind: CommandKind,
        command_id: MessageId,
        outcome: Outcome,
    },
    /// An operator asked to try the stuck command again.
    OperatorRetried { by: String, reason: String },
    /// An operator resolved a step's command by hand; the saga goes on without it.
    StepSkipped {
        step: String,
        kind: CommandKind,
        by: String,
        reason: String,
    },
    /// An operator stopped the saga; nothing more happens to it.
    SagaAborted { by: String, reason: String },
    /// Every step succeeded.
    SagaCompleted,
    /// Every completed step was compensated.
    SagaCompensated,
    /// The saga cannot make progress without an operator.
    SagaStuck {
        reason: String,
        /// The step and command that could not be done, for the operator's retry or skip.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<CommandKind>,
    },
}

impl Event {
    /// The stored type tag, e.g. `StepSucceeded`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::SagaStarted { .. } => "SagaStarted",
            Event::StepStarted { .. } => "StepStarted",
            Event::StepSucceeded { .. } => "StepSucceeded",
            Event::StepRejected { .. } => "StepRejected",
            Event::SagaFailed { .. } => "SagaFailed",
            Event::CompensationStarted { .. } => "CompensationStarted",
            Event::StepCompensated { .. } => "StepCompensated",
            Event::CommandTimedOut { .. } => "CommandTimedOut",
            Event::CommandFailed { .. } => "CommandFailed",
            Event::RetryScheduled { .. } => "RetryScheduled",
            Event::LateReplyRecorded { .. } => "LateReplyRecorded",
            Event::OperatorRetried { .. } => "OperatorRetried",
            Event::StepSkipped { .. } => "StepSkipped",
            Event::SagaAborted { .. } => "SagaAborted",
            Event::SagaCompleted => "SagaCompleted",
            Event::SagaCompensated => "SagaCompensated",
            Event::SagaStuck { .. } => "SagaStuck",
        }
    }

    /// The event as stored: its fields without the tag (the tag is stored beside it).
    pub fn to_payload(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.remove("type");
        }
        value
    }

    /// Reads a stored event of `type_name` written with `schema_version`.
    pub fn decode(
        type_name: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, DecodeError> {
        if schema_version != EVENT_SCHEMA_VERSION {
            return Err(DecodeError::UnknownVersion {
                type_name: type_name.to_string(),
                schema_version,
            });
        }
        let mut tagged = payload.clone();
        match tagged.as_object_mut() {
            Some(obj) => {
                obj.insert("type".into(), type_name.into());
            }
            None => tagged = serde_json::json!({ "type": type_name }),
        }
        serde_json::from_value(tagged).map_err(|e| DecodeError::Invalid {
            type_name: type_name.to_string(),
            reason: e.to_string(),
        })
    }
}

/// An event with the time it happened: the participant's clock for replies, the
/// orchestrator's for its own decisions. The store adds the time it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurred {
    pub at: Timestamp,
    #[serde(flatten)]
    pub event: Event,
}

/// A stored event this build cannot read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("event {type_name} has schema version {schema_version}, which this build cannot read")]
    UnknownVersion {
        type_name: String,
        schema_version: u32,
    },
    #[error("event {type_name} is not valid: {reason}")]
    Invalid { type_name: String, reason: String },
}
