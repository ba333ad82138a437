//! Exactly once per message id: the inbox look-up, the business change and the inbox record
//! of a command in one transaction.
//!
//! With tracing on, [`handle`] runs in a `handle {Command}` span whose children are its
//! database work: `BEGIN`, `SELECT inbox`, `apply {Command}` (the business change),
//! `INSERT inbox` and `COMMIT` (`db.system.name` = `sqlite` or `postgresql`). The span records
//! the outcome, and an error status with the reason when the command cannot be handled.

use crate::participant::{Error, Participant, retry_conflicts};
use crate::store;
use opentelemetry::trace::Status;
use saga_protocol::{CommandEnvelope, ReplyEnvelope, Timestamp};
use saga_sql::Backend;
use sqlx::AnyConnection;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
    participant.store().inbox_window().check(command, now)?;
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
