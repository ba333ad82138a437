//! The seam between the runtime and a participant's business logic.
//!
//! A participant implements [`Participant`]: which commands it knows, and how to apply one
//! inside a database transaction. [`Handler`] wraps it into a
//! `tower::Service<CommandEnvelope, Response = ReplyEnvelope, Error = Error>` that adds the
//! inbox: look the message id up, apply, record the reply, commit — one transaction. The
//! runtime stacks in-process layers on it with [`stack`] (a timeout; more compose the same way).
//!
//! Two kinds of failure are kept apart: a business refusal is an [`Outcome::Rejected`] reply
//! (recorded, never retried), an infrastructure failure is an [`Error`] (no reply is sent, the
//! command is redelivered later).
//!
//! With tracing on, [`handle`] runs in a `handle {Command}` span whose children are its
//! database work: `BEGIN`, `SELECT inbox`, `apply {Command}` (the business change),
//! `INSERT inbox` and `COMMIT` (`db.system.name` = `sqlite` or `postgresql`). The span records
//! the outcome, and an error status with the reason when the command cannot be handled.
//!
//! ```no_run
//! # async fn demo(command: saga_protocol::CommandEnvelope) -> Result<(), Box<dyn std::error::Error>> {
//! use saga_participants::{account::Account, handler, store::Store};
//! use tower::ServiceExt;
//!
//! let store = Store::open("sqlite:account.db", 4).await?;
//! let service = handler::stack(Account::new(store), std::time::Duration::from_secs(20));
//! let reply = service.oneshot(command).await?;
//! # Ok(()) }
//! ```

use crate::{Kind, admin, store};
use futures::future::BoxFuture;
use opentelemetry::trace::Status;
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, ReplyEnvelope, Timestamp};
use saga_sql::Backend;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{BoxError, Service, ServiceBuilder};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How often a transaction that lost a race (unique key, version check) is run again. The
/// rerun sees the winner's commit: the inbox row, the effect, or the new version.
const CONFLICT_ATTEMPTS: usize = 5;

/// The business logic of one participant.
pub trait Participant: Clone + Send + Sync + 'static {
    const KIND: Kind;
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

    /// Answers an admin request (see [`admin`]).
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
}

impl Error {
    /// Whether trying again later may succeed (database briefly down, lost race, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => saga_sql::is_transient(e),
            Error::Conflict(_) | Error::Timeout(_) | Error::Layer(_) => true,
            Error::Corrupt(_) => false,
        }
    }

    fn from_layer(error: BoxError, timeout: Duration) -> Self {
        if error.is::<tower::timeout::error::Elapsed>() {
            return Error::Timeout(timeout);
        }
        match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(other) => Error::Layer(other.to_string()),
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

/// Handles `command` exactly once per message id: inbox lookup, apply, record, commit.
pub async fn handle<P: Participant>(
    participant: &P,
    command: &CommandEnvelope,
) -> Result<ReplyEnvelope, Error> {
    handle_in(participant, command, handle_span(command))
        .await
        .map(|(reply, _)| reply)
}

/// [`handle`] inside `span` (from [`handle_span`]), alone in its transaction. The flag says
/// whether the message id was in the inbox already (the reply is the recorded one).
pub(crate) async fn handle_in<P: Participant>(
    participant: &P,
    command: &CommandEnvelope,
    span: tracing::Span,
) -> Result<(ReplyEnvelope, bool), Error> {
    let handled = retry_conflicts(|| handle_once(participant, command))
        .instrument(span.clone())
        .await;
    finish_span(&span, &handled);
    handled
}

/// Records the outcome of a command on its `handle` span.
pub(crate) fn finish_span(span: &tracing::Span, handled: &Result<(ReplyEnvelope, bool), Error>) {
    match handled {
        Ok((reply, duplicate)) => {
            span.record("saga.outcome", reply.outcome.status());
            span.record("saga.duplicate", *duplicate);
            if let saga_protocol::Outcome::Rejected { reason } = &reply.outcome {
                span.record("saga.reason", reason.as_str());
            }
        }
        Err(e) => span.set_status(Status::error(e.to_string())),
    }
}

/// One try; the flag says whether the message id was in the inbox already.
async fn handle_once<P: Participant>(
    participant: &P,
    command: &CommandEnvelope,
) -> Result<(ReplyEnvelope, bool), Error> {
    let db = participant.store().backend();
    let span = tracing::Span::current();
    let mut tx = participant
        .store()
        .begin()
        .instrument(db_span(&span, db, "BEGIN", None))
        .await?;
    let handled = handle_in_tx(participant, &mut tx, command, &span).await?;
    // A duplicate wrote nothing: dropping the transaction rolls it back.
    if !handled.1 {
        tx.commit()
            .instrument(db_span(&span, db, "COMMIT", None))
            .await?;
    }
    Ok(handled)
}

/// The inbox look-up, the business change and the inbox record of one command inside `tx`,
/// with their spans under `span`. The flag says whether the message id was in the inbox
/// already (then nothing was written).
pub(crate) async fn handle_in_tx<P: Participant>(
    participant: &P,
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    span: &tracing::Span,
) -> Result<(ReplyEnvelope, bool), Error> {
    let id = command.message_id.as_str();
    let db = participant.store().backend();
    let recorded = store::recorded(&mut *tx, id)
        .instrument(db_span(span, db, "SELECT", Some("inbox")))
        .await?;
    if let Some(recorded) = recorded {
        tracing::debug!(message_id = id, "duplicate: answering the recorded reply");
        return ReplyEnvelope::decode(recorded.as_bytes())
            .map(|reply| (reply, true))
            .map_err(|e| Error::Corrupt(format!("inbox reply of {id}: {e}")));
    }
    let now = Timestamp::now();
    let (reply, encoded) = apply_in_tx(participant, tx, command, now, span).await?;
    // A unique violation here means a concurrent delivery committed first: it becomes a
    // Conflict, this transaction is dropped (rolled back) and the rerun finds its reply.
    store::record(&mut *tx, id, &encoded, now)
        .instrument(db_span(span, db, "INSERT", Some("inbox")))
        .await?;
    Ok((reply, false))
}

/// The business change of one command inside `tx` (its `apply` span under `span`), and the
/// reply to record for it, encoded.
pub(crate) async fn apply_in_tx<P: Participant>(
    participant: &P,
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
    span: &tracing::Span,
) -> Result<(ReplyEnvelope, String), Error> {
    let db = participant.store().backend();
    let outcome = participant
        .apply(&mut *tx, command, now)
        .instrument(apply_span(span, db, &command.command))
        .await?;
    let reply = ReplyEnvelope::answering(command, outcome, now);
    let encoded = String::from_utf8(reply.encode()).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok((reply, encoded))
}

/// The span of one command's handling; disabled when tracing is off.
pub(crate) fn handle_span(command: &CommandEnvelope) -> tracing::Span {
    if !saga_telemetry::tracing_enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "handle",
        otel.name = format!("handle {}", command.command),
        saga.id = %command.saga_id,
        saga.name = command.saga_name.as_str(),
        saga.step = command.step.as_str(),
        saga.attempt = command.attempt,
        saga.command = command.command.as_str(),
        saga.participant = command.participant.as_str(),
        messaging.message.id = command.message_id.as_str(),
        saga.outcome = tracing::field::Empty,
        saga.duplicate = tracing::field::Empty,
        saga.reason = tracing::field::Empty,
    )
}

/// `sqlite` or `postgresql`, as OpenTelemetry's `db.system.name` says.
fn db_system(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    }
}

/// A client span of one database operation, named `{operation} {table}`, child of `parent`.
pub(crate) fn db_span(
    parent: &tracing::Span,
    backend: Backend,
    operation: &'static str,
    table: Option<&'static str>,
) -> tracing::Span {
    if !saga_telemetry::tracing_enabled() {
        return tracing::Span::none();
    }
    let name = match table {
        Some(table) => format!("{operation} {table}"),
        None => operation.to_string(),
    };
    tracing::info_span!(
        parent: parent,
        "db",
        otel.name = name,
        otel.kind = "client",
        db.system.name = db_system(backend),
        db.operation.name = operation,
        db.collection.name = table,
        db.operation.batch.size = tracing::field::Empty,
    )
}

/// The span of the business change, inside the command's transaction.
fn apply_span(parent: &tracing::Span, backend: Backend, command: &str) -> tracing::Span {
    if !saga_telemetry::tracing_enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        parent: parent,
        "apply",
        otel.name = format!("apply {command}"),
        db.system.name = db_system(backend),
    )
}

/// A participant as a tower service (see the module docs).
///
/// Commands handed to it at the same time share a transaction ([`crate::batch`]): each keeps
/// its own inbox check, business change and reply, and a batch that fails is handled again
/// command by command.
#[derive(Debug, Clone)]
pub struct Handler {
    batcher: crate::batch::Batcher,
}

impl Handler {
    /// The handler of `participant`; spawns its batch task on the current tokio runtime.
    pub fn new<P: Participant>(participant: P) -> Self {
        Handler {
            batcher: crate::batch::Batcher::spawn(participant),
        }
    }
}

impl Service<CommandEnvelope> for Handler {
    type Response = ReplyEnvelope;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ReplyEnvelope, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: CommandEnvelope) -> Self::Future {
        let batcher = self.batcher.clone();
        Box::pin(async move { batcher.handle(command).await })
    }
}

/// The handler with the runtime's in-process layers: a `timeout` (a timed-out transaction is
/// dropped, hence rolled back, and the command redelivered), errors mapped back to [`Error`].
pub fn stack<P: Participant>(
    participant: P,
    timeout: Duration,
) -> impl Service<CommandEnvelope, Response = ReplyEnvelope, Error = Error, Future: Send>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .map_err(move |e: BoxError| Error::from_layer(e, timeout))
        .timeout(timeout)
        .service(Handler::new(participant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_errors_map_back_to_kinds() {
        let timeout = Duration::from_secs(3);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert!(matches!(Error::from_layer(elapsed, timeout), Error::Timeout(d) if d == timeout));
        let inner: BoxError = Box::new(Error::Corrupt("x".into()));
        let back = Error::from_layer(inner, timeout);
        assert!(matches!(back, Error::Corrupt(_)));
        assert!(!back.is_transient());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_transient());
    }
}
