//! Group commit of commands: the commands in hand at one moment share one transaction.
//!
//! The [`Handler`](crate::service::Handler) hands every command to one task per participant.
//! The task takes what is waiting (up to [`MAX_BATCH`]) and handles it in one transaction:
//! for each command in turn the inbox look-up, the business change and the inbox record,
//! exactly as alone (a later command of the batch sees the earlier ones' writes, so two
//! copies of one message still apply once), then one `COMMIT` for all. Batches form by
//! themselves: while one commits, the next commands queue up; a single command is handled
//! alone, with no added wait.
//!
//! The inbox guarantee is unchanged: a command's reply is given only after the transaction
//! holding its inbox record and its business change has committed. If any statement of a
//! batch fails (a race lost to another instance, the database gone) the whole batch is rolled
//! back and each command is handled again in a transaction of its own, with the usual
//! conflict reruns, so each gets its own answer. On SQLite this task is also the only writer,
//! so commands queue in memory instead of sleeping on SQLite's busy handler.
//!
//! With tracing on, each command keeps its span tree: its `handle` span holds `BEGIN`,
//! `SELECT inbox`, `apply …`, `INSERT inbox` and `COMMIT`, where all but `apply …` are the
//! batch's statements, shared (`db.operation.batch.size` says by how many commands).

use crate::inbox;
use crate::metrics::Duplicates;
use crate::participant::{Error, Participant};
use crate::store;
use saga_protocol::{CommandEnvelope, ReplyEnvelope, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// Most commands committed in one transaction.
pub const MAX_BATCH: usize = 64;
/// Commands waiting for the task at most; callers beyond wait to enqueue.
const QUEUE: usize = 1024;

/// A command waiting for the batch task, with its `handle` span.
struct Job {
    command: CommandEnvelope,
    span: tracing::Span,
    done: oneshot::Sender<Result<ReplyEnvelope, Error>>,
}

/// The handle on a participant's batch task. Cheap to clone; the task ends with the last one.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
}

impl Batcher {
    /// Spawns the batch task of `participant` on the current tokio runtime. It counts the
    /// duplicates it answers from the inbox ([`Duplicates`]).
    pub fn spawn<P: Participant>(participant: P) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(participant, Duplicates::new(P::NAME), jobs));
        Batcher { queue }
    }

    /// Handles `command` exactly once per message id (see [`inbox::handle`]).
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the command: it may still be committed, and a
    /// redelivery then gets the recorded reply from the inbox.
    pub async fn handle(&self, command: CommandEnvelope) -> Result<ReplyEnvelope, Error> {
        let span = inbox::handle_span(&command);
        let (done, reply) = oneshot::channel();
        self.queue
            .send(Job {
                command,
                span,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        reply.await.map_err(|_| stopped())?
    }
}

/// The batch task is gone (its runtime is shutting down): the command is redelivered later.
fn stopped() -> Error {
    Error::Layer("the participant's batch task stopped".into())
}

async fn run<P: Participant>(participant: P, duplicates: Duplicates, jobs: mpsc::Receiver<Job>) {
    saga_sql::group_commit::run(jobs, MAX_BATCH, |batch| {
        handle_batch(&participant, &duplicates, batch)
    })
    .await;
}

async fn handle_batch<P: Participant>(participant: &P, duplicates: &Duplicates, batch: Vec<Job>) {
    if batch.len() > 1 {
        match together(participant, &batch).await {
            Ok(handled) => {
                for (job, handled) in batch.into_iter().zip(handled) {
                    // Counted only now that the batch committed: a batch that failed is
                    // handled again below, and each of its duplicates is counted there once.
                    if handled.1 {
                        duplicates.count(&job.command.command);
                    }
                    let handled = Ok(handled);
                    inbox::finish_span(&job.span, &handled);
                    // A caller that went away gets its reply from the inbox on redelivery.
                    let _ = job.done.send(handled.map(|(reply, _)| reply));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, commands = batch.len(), "batch failed, handling alone");
            }
        }
    }
    for job in batch {
        let handled = inbox::handle_in(participant, &job.command, job.span).await;
        if let Ok((_, true)) = &handled {
            duplicates.count(&job.command.command);
        }
        let _ = job.done.send(handled.map(|(reply, _)| reply));
    }
}

/// Every command of `batch` in one transaction, committed; `Err` if any statement or the
/// commit failed (then nothing was written). The inbox is read for the whole batch in one
/// statement and written in one; a second copy of a message inside the batch gets the reply
/// of the first, as it would from the inbox.
async fn together<P: Participant>(
    participant: &P,
    batch: &[Job],
) -> Result<Vec<(ReplyEnvelope, bool)>, Error> {
    let db = participant.store().backend();
    let shared = |operation, table| -> Vec<tracing::Span> {
        batch
            .iter()
            .map(|job| {
                let span = inbox::db_span(&job.span, db, operation, table);
                span.record("db.operation.batch.size", batch.len());
                span
            })
            .collect()
    };
    let begin = shared("BEGIN", None);
    let mut tx = participant.store().begin().await?;
    drop(begin);

    let ids: Vec<&str> = batch
        .iter()
        .map(|j| j.command.message_id.as_str())
        .collect();
    let select = shared("SELECT", Some("inbox"));
    let mut recorded = store::recorded_many(&mut tx, &ids).await?;
    drop(select);

    let mut handled = Vec::with_capacity(batch.len());
    let mut new_replies: Vec<(&str, String)> = Vec::with_capacity(batch.len());
    let now = Timestamp::now();
    for job in batch {
        let id = job.command.message_id.as_str();
        if let Some(reply) = recorded.get(id) {
            tracing::debug!(message_id = id, "duplicate: answering the recorded reply");
            let reply = ReplyEnvelope::decode(reply.as_bytes())
                .map_err(|e| Error::Corrupt(format!("inbox reply of {id}: {e}")))?;
            handled.push((reply, true));
            continue;
        }
        // An expired command fails the batch; handled alone, it is refused by itself.
        participant
            .store()
            .inbox_window()
            .check(&job.command, now)?;
        let (reply, encoded) =
            inbox::apply_in_tx(participant, &mut tx, &job.command, now, &job.span).await?;
        recorded.insert(id.to_string(), encoded.clone());
        new_replies.push((id, encoded));
        handled.push((reply, false));
    }

    if !new_replies.is_empty() {
        let insert = shared("INSERT", Some("inbox"));
        // A unique violation (another instance recorded one of these first) fails the batch;
        // its commands are then handled alone and find that reply.
        store::record_many(&mut tx, &new_replies, now).await?;
        drop(insert);
    }
    let commit = shared("COMMIT", None);
    tx.commit().await?;
    drop(commit);
    Ok(handled)
}
