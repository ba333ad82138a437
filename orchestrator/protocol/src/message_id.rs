use crate::envelope::CommandKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Deterministic id of a command, derived from the event that decided it.
///
/// `{saga_id}.{step}.{attempt}.{do|undo}`. It is sent as `Nats-Msg-Id` (JetStream's
/// de-duplication window) and it is the key of every participant's durable inbox, so a
/// command re-published after a crash is recognised as the same command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    /// Id of the command that performs (`Forward`) or undoes (`Compensation`) `step`.
    pub fn command(saga_id: Uuid, step: &str, attempt: u32, kind: CommandKind) -> Self {
        let suffix = match kind {
            CommandKind::Forward => "do",
            CommandKind::Compensation => "undo",
        };
        MessageId(format!("{saga_id}.{step}.{attempt}.{suffix}"))
    }

    /// Id of the reply to the command `command_id`.
    pub fn reply_to(command_id: &MessageId) -> Self {
        MessageId(format!("{}.reply", command_id.0))
    }

    /// Wraps an id received from outside (a header or an inbox row).
    pub fn from_raw(raw: impl Into<String>) -> Self {
        MessageId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
