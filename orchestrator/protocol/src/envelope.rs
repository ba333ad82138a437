use crate::{MessageId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the envelope schema written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether a command performs a step or undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Forward,
    Compensation,
}

/// A command from the orchestrator to a participant, published on
/// [`subjects::command`](crate::subjects::command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// Envelope schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Deterministic id; the participant's inbox key.
    pub message_id: MessageId,
    pub saga_id: Uuid,
    pub saga_name: String,
    /// Name of the step in the saga definition.
    pub step: String,
    /// 1 for the first attempt of this command.
    pub attempt: u32,
    pub kind: CommandKind,
    /// Participant that must handle it (also the second subject token).
    pub participant: String,
    /// Command name, e.g. `ReserveCredit` (also the last subject token).
    pub command: String,
    /// Key of the business effect, the same for a step's command and its compensation
    /// (`{saga_id}.{step}`). A compensation that finds no effect under this key records a
    /// tombstone, so the late command it overtook is refused.
    pub effect_key: String,
    /// Command arguments.
    pub payload: serde_json::Value,
    /// When the orchestrator decided to send it.
    pub sent_at: Timestamp,
}

/// What a participant answers to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The effect was applied (or had been applied before); `output` feeds later steps.
    Succeeded { output: serde_json::Value },
    /// A business rule refused the command (e.g. insufficient credit). Never retried.
    Rejected { reason: String },
    /// The participant could not apply it for now (a dependency is down, its own retries ran
    /// out). Nothing is known to be applied; the orchestrator retries with backoff.
    Failed { reason: String },
}

impl Outcome {
    /// The `status` tag: `succeeded`, `rejected` or `failed`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => "succeeded",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// A participant's reply, published on [`subjects::reply`](crate::subjects::reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    pub schema_version: u32,
    /// `{command message id}.reply`.
    pub message_id: MessageId,
    /// The command this answers.
    pub command_id: MessageId,
    pub saga_id: Uuid,
    pub step: String,
    pub attempt: u32,
    pub kind: CommandKind,
    pub participant: String,
    pub outcome: Outcome,
    /// When the participant applied (or refused) the command: the participant's clock.
    pub occurred_at: Timestamp,
}

impl ReplyEnvelope {
    /// The reply to `command` with `outcome`, stamped with the participant's time `occurred_at`.
    pub fn answering(command: &CommandEnvelope, outcome: Outcome, occurred_at: Timestamp) -> Self {
        ReplyEnvelope {
            schema_version: SCHEMA_VERSION,
            message_id: MessageId::reply_to(&command.message_id),
            command_id: command.message_id.clone(),
            saga_id: command.saga_id,
            step: command.step.clone(),
            attempt: command.attempt,
            kind: command.kind,
            participant: command.participant.clone(),
            outcome,
            occurred_at,
        }
    }
}

/// Why bytes received from NATS are not a valid envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema version {found} (this build reads up to {SCHEMA_VERSION})")]
    UnsupportedVersion { found: u32 },
}

fn check_version(found: u32) -> Result<(), DecodeError> {
    if found == 0 || found > SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion { found });
    }
    Ok(())
}

impl CommandEnvelope {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let env: Self = serde_json::from_slice(bytes)?;
        check_version(env.schema_version)?;
        Ok(env)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl ReplyEnvelope {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let env: Self = serde_json::from_slice(bytes)?;
        check_version(env.schema_version)?;
        Ok(env)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
