//! The seam between the runtime and a participant's business logic.
//!
//! A participant implements [`Participant`]: its name, which commands it knows, and how to
//! apply one inside a database transaction. The runtime does the rest: the inbox
//! ([`crate::inbox`]), group commit ([`crate::batch`]), the tower service
//! ([`crate::service`]) and the consumer loop ([`crate::runtime`]).
//!
//! Two kinds of failure are kept apart: a business refusal is an [`Outcome::Rejected`] reply
//! (recorded, never retried), an infrastructure failure is an [`Error`] (no reply is sent, the
//! command is redelivered later).

use crate::{admin, store};
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, Timestamp};
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use std::future::Future;
use std::time::Duration;

/// Name of the durable JetStream consumer shared by every instance of participant
/// `participant`: `participant-{participant}`.
pub fn consumer_name(participant: &str) -> String {
    saga_protocol::subjects::participant_consumer(participant)
}

/// How often a transaction that lost a race (unique key, version check) is run again. The
/// rerun sees the winner's commit: the inbox row, the effect, or the new version.
const CONFLICT_ATTEMPTS: usize = 5;

/// The business logic of one participant.
pub trait Participant: Clone + Send + Sync + 'static {
    /// Its name: the second token of its command subjects (`saga.cmd.{name}.>`), of its
    /// reply subject and of its consumer (`participant-{name}`), e.g. `account`.
    const NAME: &'static str;
    /// The commands it handles, each with the kind it must be sent as.
    const COMMANDS: &'static [(&'static str, CommandKind)];

    fn store(&self) -> &store::Store;

    /// Applies `command` inside the caller's transaction and says what to answer. The caller
    /// records the reply in the inbox and commits; on `Err` nothing is committed.
    fn apply<'a>(
        &'a self,
        tx: &'a mut AnyConnection,
        command: &'a CommandEnvelope,
        now: Timestamp,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send + 'a;

    /// Answers an admin request (see [`crate::admin`]).
    fn admin(
        &self,
        request: admin::Request,
    ) -> impl Future<Output = Result<admin::Reply, Error>> + Send + '_;
}

/// An infrastructure failure while handling a command. Business refusals are not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A concurrent transaction won a race on a key or a version; running again settles it.
    #[error("concurrent write conflict: {0}")]
    Conflict(String),
    /// Data in the database cannot be read back (a bug or a manual edit), not retryable.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("the handler did not finish within {0:?}")]
    Timeout(Duration),
    /// A failure raised by a tower layer around the handler.
    #[error("{0}")]
    Layer(String),
    /// A command too old to apply without its inbox record (see [`crate::retention`]):
    /// dead-lettered with the reason, never applied.
    #[error("{0}")]
    Expired(String),
}

impl Error {
    /// Whether trying again later may succeed (database briefly down, lost race, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => saga_sql::is_transient(e),
            Error::Conflict(_) | Error::Timeout(_) | Error::Layer(_) => true,
            Error::Corrupt(_) | Error::Expired(_) => false,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            // 40001 serialization failure, 40P01 deadlock: PostgreSQL asks for a rerun.
            let rerun = matches!(db.code().as_deref(), Some("40001" | "40P01"));
            if db.is_unique_violation() || rerun {
                return Error::Conflict(db.message().to_string());
            }
        }
        Error::Database(error)
    }
}

/// `Succeeded` with `output`.
pub fn succeeded(output: serde_json::Value) -> Outcome {
    Outcome::Succeeded { output }
}

/// `Rejected` with `reason`.
pub fn rejected(reason: impl Into<String>) -> Outcome {
    Outcome::Rejected {
        reason: reason.into(),
    }
}

/// The command's payload as `T`. Unknown fields are ignored (the orchestrator merges the saga
/// input and earlier outputs into it). A missing or mistyped field is a valid envelope with a
/// bad payload: it is answered `Rejected` with the reason, so the saga compensates, rather
/// than dead-lettered, which would leave the step waiting for a reply that never comes.
pub fn payload<T: DeserializeOwned>(command: &CommandEnvelope) -> Result<T, Outcome> {
    serde_json::from_value(command.payload.clone())
        .map_err(|e| rejected(format!("invalid {} payload: {e}", command.command)))
}

/// Runs `attempt` again while it fails with [`Error::Conflict`], up to a bound.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(Error::Conflict(why)) if tries < CONFLICT_ATTEMPTS => {
                tracing::debug!(%why, tries, "write conflict, running the transaction again");
                tries += 1;
            }
            other => return other,
        }
    }
}
