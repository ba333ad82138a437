//! Group commit: the writes of many sagas in one transaction, by one writer task.
//!
//! Every [`SqlStore`](super::SqlStore) create and append is sent to one task, which takes
//! what is waiting (up to [`MAX_BATCH`]) and writes it in one transaction: each write keeps
//! its own compare-and-set and its own outcome, but the batch shares one `BEGIN`, one
//! `COMMIT`, one connection and, set by set, its statements (one INSERT of the new sagas, one
//! compare-and-set UPDATE of the appended ones, one INSERT of all their events; see
//! [`super::writes`]), so a batch costs a handful of statements whatever its size.
//!
//! Batches form by themselves: while one commits, the next writes queue up, so a busy
//! orchestrator commits many sagas at once and an idle one commits each write alone, with no
//! added wait.
//!
//! On SQLite this task is also the only writer of the database, so writers queue in memory
//! instead of sleeping on SQLite's busy handler; on PostgreSQL one commit (one fsync) serves
//! the whole batch.
//!
//! Outcomes stay those of separate transactions. A write refused cleanly (a stale version, an
//! unknown saga, a used idempotency key) writes nothing and lets the rest commit. If a
//! statement fails, or the commit does, the batch is rolled back and every write in it is run
//! again alone, so each gets its own answer; an append whose batch did commit despite the
//! error then meets its own version and answers [`Error::Conflict`], so the runtime reloads
//! and nothing is written twice. Two writes of one saga never share a batch: the second one
//! runs alone after it.

use super::writes::{self, EventRows, Step, append_in, create_in};
use super::{Created, Error, NewEvent, NewSaga, Result, Summary};
use saga_protocol::Timestamp;
use sqlx::{AnyConnection, AnyPool};
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; callers beyond wait to enqueue.
const QUEUE: usize = 4096;

/// A write waiting for the writer task.
enum Write {
    Create {
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: Summary,
        recorded_at: Timestamp,
        done: oneshot::Sender<Result<Created>>,
    },
    Append {
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: Summary,
        recorded_at: Timestamp,
        done: oneshot::Sender<Result<u64>>,
    },
}

impl Write {
    fn saga_id(&self) -> Uuid {
        match self {
            Write::Create { saga, .. } => saga.saga_id,
            Write::Append { saga_id, .. } => *saga_id,
        }
    }
}

/// The handle on the writer task. Cheap to clone; the task ends when the last one is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Write>,
}

impl Writer {
    /// Spawns the writer task on the current tokio runtime.
    pub fn spawn(pool: AnyPool) -> Self {
        let (queue, writes) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, writes));
        Writer { queue }
    }

    /// [`EventStore::create`](super::EventStore::create) through the writer.
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the write: it is committed or not as a whole,
    /// and the caller does not learn which.
    pub async fn create(
        &self,
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: Summary,
        recorded_at: Timestamp,
    ) -> Result<Created> {
        let (done, outcome) = oneshot::channel();
        self.send(Write::Create {
            saga,
            events,
            summary,
            recorded_at,
            done,
        })
        .await?;
        outcome.await.map_err(|_| gone())?
    }

    /// [`EventStore::append`](super::EventStore::append) of at least one event, through the
    /// writer. Cancel safety as for [`Writer::create`].
    pub async fn append(
        &self,
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: Summary,
        recorded_at: Timestamp,
    ) -> Result<u64> {
        let (done, outcome) = oneshot::channel();
        self.send(Write::Append {
            saga_id,
            expected_version,
            events,
            summary,
            recorded_at,
            done,
        })
        .await?;
        outcome.await.map_err(|_| gone())?
    }

    async fn send(&self, write: Write) -> Result<()> {
        self.queue.send(write).await.map_err(|_| gone())
    }
}

/// The writer task stopped (its runtime is shutting down): transient, like a lost connection.
fn gone() -> Error {
    Error::Database(sqlx::Error::WorkerCrashed)
}

async fn run(pool: AnyPool, writes: mpsc::Receiver<Write>) {
    let pool = &pool;
    saga_sql::group_commit::run(writes, MAX_BATCH, move |mut batch| async move {
        write_batch(pool, &mut batch).await;
    })
    .await;
}

/// Writes `batch` (emptying it) in one transaction, or each write alone if that fails.
async fn write_batch(pool: &AnyPool, batch: &mut Vec<Write>) {
    if batch.len() == 1 {
        for write in batch.drain(..) {
            write_alone(pool, write).await;
        }
        return;
    }
    // Second writes of a saga wait until the first is committed.
    let mut sagas = HashSet::with_capacity(batch.len());
    let (now, later): (Vec<Write>, Vec<Write>) =
        batch.drain(..).partition(|w| sagas.insert(w.saga_id()));
    match write_together(pool, &now).await {
        Ok(outcomes) => {
            for (write, outcome) in now.into_iter().zip(outcomes) {
                answer(write, outcome);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, writes = now.len(), "group commit failed, writing alone");
            for write in now {
                write_alone(pool, write).await;
            }
        }
    }
    for write in later {
        write_alone(pool, write).await;
    }
}

/// What one write of a committed batch answers.
enum Outcome {
    Created(Result<Created>),
    Appended(Result<u64>),
}

fn answer(write: Write, outcome: Outcome) {
    // A caller that went away (dropped its future) no longer needs the answer.
    match (write, outcome) {
        (Write::Create { done, .. }, Outcome::Created(r)) => {
            let _ = done.send(r);
        }
        (Write::Append { done, .. }, Outcome::Appended(r)) => {
            let _ = done.send(r);
        }
        // `write_together` answers each write with its own kind.
        (Write::Create { done, .. }, Outcome::Appended(_)) => {
            let _ = done.send(Err(Error::Corrupt("group commit mixed up a create".into())));
        }
        (Write::Append { done, .. }, Outcome::Created(_)) => {
            let _ = done.send(Err(Error::Corrupt(
                "group commit mixed up an append".into(),
            )));
        }
    }
}

/// Every write of `batch` (one per saga) in one transaction, set by set: one INSERT of the
/// new sagas, one compare-and-set UPDATE of the appended ones, one INSERT of all their
/// events and one of the new sagas' tags. `Err` when a statement or the commit failed (then
/// nothing is known to be written).
async fn write_together(pool: &AnyPool, batch: &[Write]) -> Result<Vec<Outcome>> {
    let mut creates = Vec::new();
    let mut appends = Vec::new();
    for write in batch {
        match write {
            Write::Create {
                saga,
                events,
                summary,
                recorded_at,
                ..
            } => creates.push((saga, events.len(), summary, *recorded_at)),
            Write::Append {
                saga_id,
                expected_version,
                events,
                summary,
                recorded_at,
                ..
            } => appends.push((
                *saga_id,
                *expected_version,
                events.len(),
                summary,
                *recorded_at,
            )),
        }
    }
    // Rows in id order, so two replicas' batches on PostgreSQL lock shared rows in one order.
    creates.sort_by_key(|(saga, ..)| saga.saga_id);
    appends.sort_by_key(|(saga_id, ..)| *saga_id);

    let mut tx = pool.begin().await.map_err(Error::Database)?;
    let inserted = if creates.is_empty() {
        HashSet::new()
    } else {
        writes::insert_sagas(&mut tx, &creates).await?
    };
    let moved = if appends.is_empty() {
        HashSet::new()
    } else {
        writes::update_sagas(&mut tx, &appends).await?
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events_of = Vec::with_capacity(batch.len());
    let mut tags_of = Vec::new();
    for write in batch {
        outcomes.push(match write {
            Write::Create {
                saga,
                events,
                recorded_at,
                ..
            } if inserted.contains(&saga.saga_id) => {
                events_of.push(EventRows {
                    saga_id: saga.saga_id,
                    after: 0,
                    events,
                    recorded_at: *recorded_at,
                });
                tags_of.push((saga, *recorded_at));
                Outcome::Created(Ok(Created::New))
            }
            Write::Create { saga, .. } => {
                Outcome::Created(writes::refused_create(&mut tx, saga).await?)
            }
            Write::Append {
                saga_id,
                expected_version,
                events,
                recorded_at,
                ..
            } if moved.contains(saga_id) => {
                events_of.push(EventRows {
                    saga_id: *saga_id,
                    after: *expected_version,
                    events,
                    recorded_at: *recorded_at,
                });
                Outcome::Appended(Ok(expected_version + events.len() as u64))
            }
            Write::Append {
                saga_id,
                expected_version,
                ..
            } => Outcome::Appended(
                writes::refused_append(&mut tx, *saga_id, *expected_version).await?,
            ),
        });
    }
    writes::insert_events(&mut tx, &events_of).await?;
    if !tags_of.is_empty() {
        writes::insert_tags(&mut tx, &tags_of).await?;
    }
    tx.commit().await.map_err(Error::Database)?;
    Ok(outcomes)
}

/// One write in its own transaction, answered.
async fn write_alone(pool: &AnyPool, write: Write) {
    match write {
        Write::Create {
            saga,
            events,
            summary,
            recorded_at,
            done,
        } => {
            let outcome = alone(pool, async |tx| {
                create_in(tx, &saga, &events, &summary, recorded_at).await
            })
            .await;
            let _ = done.send(outcome);
        }
        Write::Append {
            saga_id,
            expected_version,
            events,
            summary,
            recorded_at,
            done,
        } => {
            let outcome = alone(pool, async |tx| {
                append_in(
                    tx,
                    saga_id,
                    expected_version,
                    &events,
                    &summary,
                    recorded_at,
                )
                .await
            })
            .await;
            let _ = done.send(outcome);
        }
    }
}

/// Runs `write` in a transaction of its own and commits it if it wrote.
async fn alone<T>(
    pool: &AnyPool,
    write: impl AsyncFnOnce(&mut AnyConnection) -> Result<Step<T>>,
) -> Result<T> {
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    match write(&mut *tx).await? {
        Step::Done(value) => {
            // If the commit's outcome is lost (connection dropped), the caller sees a
            // transient error; retrying with the same expected version then yields Conflict
            // if it did commit, and the runtime reloads, so events are never written twice.
            tx.commit().await.map_err(Error::Database)?;
            Ok(value)
        }
        // Nothing was written; dropping the transaction rolls it back.
        Step::Refused(refusal) => refusal,
    }
}
