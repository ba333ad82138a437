//! Saga events: the only source of truth. Immutable, past tense, explicitly tagged.
//!
//! The tag (`type`) and the fields are stored forever: a change of shape is a new schema
//! version of that type and an upcaster in [`SCHEMA`], never an UPDATE of stored rows.
//! [`Event::decode`] reads every version this build knows; writing uses the newest
//! ([`Event::schema_version`]).
//!
//! | type | version | change |
//! |---|---|---|
//! | `OperatorRetried`, `StepSkipped`, `SagaAborted` | 2 | `by` is the operator `{name, role}` (was the name alone) |

use saga_protocol::upcast::{Schema, Stored, Upcaster};
use saga_protocol::{CommandKind, MessageId, Outcome, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The saga log's schema: each event type's newest version and the upcasters up to it.
pub static SCHEMA: Schema = Schema {
    log: "saga",
    newest: &[
        ("OperatorRetried", 2),
        ("StepSkipped", 2),
        ("SagaAborted", 2),
    ],
    upcasters: &[
        Upcaster {
            event_type: "OperatorRetried",
            from: 1,
            change: OPERATOR_V2,
            apply: operator_v2,
        },
        Upcaster {
            event_type: "StepSkipped",
            from: 1,
            change: OPERATOR_V2,
            apply: operator_v2,
        },
        Upcaster {
            event_type: "SagaAborted",
            from: 1,
            change: OPERATOR_V2,
            apply: operator_v2,
        },
    ],
};

const OPERATOR_V2: &str = "`by` is the operator {name, role}";

/// Version 1 recorded the operator's name alone, before the API knew callers' roles: it is
/// read as an operator of no known role.
fn operator_v2(mut payload: Map<String, Value>, _: &Stored) -> Result<Map<String, Value>, String> {
    match payload.remove("by") {
        Some(Value::String(name)) => {
            payload.insert("by".into(), serde_json::json!({ "name": name }));
            Ok(payload)
        }
        Some(other) => Err(format!("`by` should be a name, not {other}")),
        None => Err("`by` is missing".into()),
    }
}

/// Who acted on a saga by hand: the authenticated caller with its role, or the name an
/// operator gave when the API authenticates no one (then no role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Operator {
    /// An operator with a role (`read`, `operate`, `admin`).
    pub fn with_role(name: impl Into<String>, role: impl Into<String>) -> Self {
        Operator {
            name: name.into(),
            role: Some(role.into()),
        }
    }
}

impl From<&str> for Operator {
    fn from(name: &str) -> Self {
        Operator {
            name: name.into(),
            role: None,
        }
    }
}

impl From<String> for Operator {
    fn from(name: String) -> Self {
        Operator { name, role: None }
    }
}

impl std::fmt::Display for Operator {
    /// `oscar`, or `oscar (operate)` with a role.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.role {
            Some(role) => write!(f, "{} ({role})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

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
    OperatorRetried { by: Operator, reason: String },
    /// An operator resolved a step's command by hand; the saga goes on without it.
    StepSkipped {
        step: String,
        kind: CommandKind,
        by: Operator,
        reason: String,
    },
    /// An operator stopped the saga; nothing more happens to it.
    SagaAborted { by: Operator, reason: String },
    /// An operator cancelled the running saga before its pivot: from here on it compensates,
    /// as after a failure, and ends compensated.
    SagaCancelled { by: Operator, reason: String },
    /// An await step began waiting for its signal, until `timeout_at`.
    SignalAwaited {
        step: String,
        signal: String,
        timeout_at: Timestamp,
    },
    /// The awaited signal came; its payload (checked, defaults filled in) is the step's output.
    SignalReceived {
        step: String,
        signal: String,
        payload: serde_json::Value,
    },
    /// The await step's timeout passed with no signal.
    SignalTimedOut { step: String, signal: String },
    /// A signal that came when no step waited for it any more (twice, or after its timeout,
    /// or once the saga moved on): recorded, it does not move the saga.
    SignalIgnored {
        signal: String,
        reason: String,
        payload: serde_json::Value,
    },
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
            Event::SagaCancelled { .. } => "SagaCancelled",
            Event::SignalAwaited { .. } => "SignalAwaited",
            Event::SignalReceived { .. } => "SignalReceived",
            Event::SignalTimedOut { .. } => "SignalTimedOut",
            Event::SignalIgnored { .. } => "SignalIgnored",
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

    /// The schema version this build writes the event with: the newest of its type.
    pub fn schema_version(&self) -> u32 {
        SCHEMA.version_of(self.type_name())
    }

    /// Reads a stored event of `type_name` written with `schema_version`, through the
    /// upcasters of every later version ([`upcast`]).
    pub fn decode(
        type_name: &str,
        schema_version: u32,
        payload: &serde_json::Value,
        stored: &Stored,
    ) -> Result<Self, DecodeError> {
        let mut tagged = upcast(type_name, schema_version, payload.clone(), stored)?;
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

/// A stored payload of `type_name` at `schema_version`, in the shape of the newest version
/// (how history is shown).
pub fn upcast(
    type_name: &str,
    schema_version: u32,
    payload: serde_json::Value,
    stored: &Stored,
) -> Result<serde_json::Value, DecodeError> {
    SCHEMA
        .upcast(type_name, schema_version, payload, stored)
        .map_err(DecodeError::Upcast)
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
    #[error(transparent)]
    Upcast(#[from] saga_protocol::upcast::UpcastError),
    #[error("event {type_name} is not valid: {reason}")]
    Invalid { type_name: String, reason: String },
}
