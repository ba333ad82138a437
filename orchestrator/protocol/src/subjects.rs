//! Stream names and subjects. These are persisted contracts (see the README's reference).
//!
//! | stream          | subjects           | written by    | read by        |
//! |-----------------|--------------------|---------------|----------------|
//! | `SAGA_COMMANDS` | `saga.cmd.>`       | orchestrator  | participants   |
//! | `SAGA_REPLIES`  | `saga.reply.>`     | participants  | orchestrator   |
//! | `SAGA_DLQ`      | `saga.dlq.>`       | any consumer  | operators      |

/// Stream holding every command and compensation sent to participants.
pub const COMMANDS_STREAM: &str = "SAGA_COMMANDS";
/// Subjects of [`COMMANDS_STREAM`].
pub const COMMANDS_SUBJECTS: &str = "saga.cmd.>";
/// Stream holding every participant reply.
pub const REPLIES_STREAM: &str = "SAGA_REPLIES";
/// Subjects of [`REPLIES_STREAM`].
pub const REPLIES_SUBJECTS: &str = "saga.reply.>";
/// Stream holding messages that could not be processed, with the reason in headers.
pub const DLQ_STREAM: &str = "SAGA_DLQ";
/// Subjects of [`DLQ_STREAM`].
pub const DLQ_SUBJECTS: &str = "saga.dlq.>";

/// Subject a command for `participant` is published on, e.g. `saga.cmd.account.ReserveCredit`.
pub fn command(participant: &str, command: &str) -> String {
    format!("saga.cmd.{participant}.{command}")
}

/// Filter matching every command addressed to `participant`.
pub fn commands_for(participant: &str) -> String {
    format!("saga.cmd.{participant}.>")
}

/// Subject a participant publishes its replies on, e.g. `saga.reply.account`.
pub fn reply(participant: &str) -> String {
    format!("saga.reply.{participant}")
}

/// Subject a consumer dead-letters to, e.g. `saga.dlq.account`.
pub fn dead_letter(consumer: &str) -> String {
    format!("saga.dlq.{consumer}")
}

/// Prefix of the participants' admin subjects (core NATS request/reply, not a stream).
pub const ADMIN_PREFIX: &str = "saga.admin";

/// The admin subject participant `participant` serves: `saga.admin.{participant}`.
pub fn admin(participant: &str) -> String {
    format!("{ADMIN_PREFIX}.{participant}")
}

/// The KV bucket of the orchestrator replicas' partition leases (stream `KV_saga_partitions`).
pub const LEASES_BUCKET: &str = "saga_partitions";

/// The durable consumer of `participant`'s commands on [`COMMANDS_STREAM`], shared by its
/// instances: `participant-{participant}`.
pub fn participant_consumer(participant: &str) -> String {
    format!("participant-{participant}")
}
