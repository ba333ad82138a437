//! Group commit: the writes of many sagas in one transaction, by one writer task.
//!
//! Every [`SqlStore`](super::SqlStore) create and append is sent to one task, which takes
//! what is waiting (up to [`MAX_BATCH`]) and writes it in one transaction: each write keeps
//! its own compare-and-set and its own outcome, but the batch shares one `BEGIN`, one
//! `COMMIT` and one connection. Batches form by themselves: while one commits, the next
//! writes queue up, so a busy orchestrator commits many sagas at once and an idle one commits
//! each write alone, with no added wait.
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

use super::sql::{current_version, decode_record, sql_int};
use super::{Created, Error, NewEvent, NewSaga, Result};
use saga_protocol::Timestamp;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe};
use std::collections::HashSet;
use std::fmt::Write as _;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; callers beyond wait to enqueue.
const QUEUE: usize = 4096;
/// Events per INSERT statement. At 7 binds a row this stays far below the bind limits (SQLite
/// 32766, PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;

/// A write waiting for the writer task.
enum Write {
    Create {
        saga: NewSaga,
        events: Vec<NewEvent>,
        status: String,
        recorded_at: Timestamp,
        done: oneshot::Sender<Result<Created>>,
    },
    Append {
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        status: String,
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

/// What a write did inside a transaction that is still usable.
enum Step<T> {
    /// Written; committed with the transaction.
    Done(T),
    /// Refused without a failed statement: nothing written, the transaction goes on.
    Refused(Result<T>),
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
        status: &str,
        recorded_at: Timestamp,
    ) -> Result<Created> {
        let (done, outcome) = oneshot::channel();
        self.send(Write::Create {
            saga,
            events,
            status: status.to_string(),
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
        status: &str,
        recorded_at: Timestamp,
    ) -> Result<u64> {
        let (done, outcome) = oneshot::channel();
        self.send(Write::Append {
            saga_id,
            expected_version,
            events,
            status: status.to_string(),
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

async fn run(pool: AnyPool, mut writes: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = writes.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        write_batch(&pool, &mut batch).await;
    }
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

/// Every write of `batch` in one transaction; `Err` when a statement or the commit failed
/// (then nothing is known to be written).
async fn write_together(pool: &AnyPool, batch: &[Write]) -> Result<Vec<Outcome>> {
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for write in batch {
        let outcome = match write {
            Write::Create {
                saga,
                events,
                status,
                recorded_at,
                ..
            } => Outcome::Created(settle(
                create_in(&mut tx, saga, events, status, *recorded_at).await?,
            )),
            Write::Append {
                saga_id,
                expected_version,
                events,
                status,
                recorded_at,
                ..
            } => Outcome::Appended(settle(
                append_in(
                    &mut tx,
                    *saga_id,
                    *expected_version,
                    events,
                    status,
                    *recorded_at,
                )
                .await?,
            )),
        };
        outcomes.push(outcome);
    }
    tx.commit().await.map_err(Error::Database)?;
    Ok(outcomes)
}

fn settle<T>(step: Step<T>) -> Result<T> {
    match step {
        Step::Done(value) => Ok(value),
        Step::Refused(refusal) => refusal,
    }
}

/// One write in its own transaction, answered.
async fn write_alone(pool: &AnyPool, write: Write) {
    match write {
        Write::Create {
            saga,
            events,
            status,
            recorded_at,
            done,
        } => {
            let outcome = alone(pool, async |tx| {
                create_in(tx, &saga, &events, &status, recorded_at).await
            })
            .await;
            let _ = done.send(outcome);
        }
        Write::Append {
            saga_id,
            expected_version,
            events,
            status,
            recorded_at,
            done,
        } => {
            let outcome = alone(pool, async |tx| {
                append_in(tx, saga_id, expected_version, &events, &status, recorded_at).await
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

/// Creates a saga inside `conn`'s transaction.
async fn create_in(
    conn: &mut AnyConnection,
    saga: &NewSaga,
    events: &[NewEvent],
    status: &str,
    recorded_at: Timestamp,
) -> Result<Step<Created>> {
    let version = new_version(saga.saga_id, 0, events.len())?;
    // The write comes first on purpose: on SQLite it takes the write lock before any read,
    // so a concurrent create waits (busy_timeout) instead of failing to upgrade a read
    // snapshot; on PostgreSQL a concurrent insert of the same key waits for ours to commit.
    // DO NOTHING covers both unique columns (saga_id, idempotency_key).
    let inserted = sqlx::query(
        "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
         idempotency_key, input_digest, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(saga.saga_id.to_string())
    .bind(saga.name.as_str())
    .bind(i64::from(saga.definition_version))
    .bind(status)
    .bind(version)
    .bind(saga.idempotency_key.as_deref())
    .bind(saga.input_digest.as_str())
    .bind(recorded_at.millis())
    .bind(recorded_at.millis())
    .execute(&mut *conn)
    .await
    .map_err(Error::Database)?
    .rows_affected();

    if inserted == 0 {
        // Something conflicted. The key wins over the id: a retried start with a key is
        // answered with its saga even if the caller also reused the saga id.
        let existing = match saga.idempotency_key.as_deref() {
            Some(key) => sqlx::query(concat!(
                "SELECT saga_id, name, definition_version, status, version, idempotency_key, ",
                "input_digest, created_at, updated_at FROM sagas WHERE idempotency_key = $1"
            ))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::Database)?,
            None => None,
        };
        return Ok(Step::Refused(match existing {
            Some(row) => decode_record(&row).map(Created::Existing),
            None => Err(Error::Conflict {
                saga_id: saga.saga_id,
                expected_version: 0,
            }),
        }));
    }

    insert_events(conn, saga.saga_id, 0, events, recorded_at).await?;
    insert_tags(conn, saga.saga_id, &saga.tags, recorded_at).await?;
    Ok(Step::Done(Created::New))
}

/// Appends at least one event inside `conn`'s transaction.
async fn append_in(
    conn: &mut AnyConnection,
    saga_id: Uuid,
    expected_version: u64,
    events: &[NewEvent],
    status: &str,
    recorded_at: Timestamp,
) -> Result<Step<u64>> {
    let version = new_version(saga_id, expected_version, events.len())?;
    let expected = sql_int(saga_id, expected_version)?;
    // Compare-and-set on the read model first (a write, for the same locking reasons as in
    // `create_in`): a stale writer is refused here before it inserts anything, and on
    // PostgreSQL a concurrent writer blocks on the row lock until we commit, then re-checks
    // the version and finds it moved.
    let updated = sqlx::query(
        "UPDATE sagas SET status = $1, version = $2, updated_at = $3 \
         WHERE saga_id = $4 AND version = $5",
    )
    .bind(status)
    .bind(version)
    .bind(recorded_at.millis())
    .bind(saga_id.to_string())
    .bind(expected)
    .execute(&mut *conn)
    .await
    .map_err(Error::Database)?
    .rows_affected();
    if updated == 0 {
        let exists = current_version(&mut *conn, saga_id).await?.is_some();
        return Ok(Step::Refused(Err(if exists {
            Error::Conflict {
                saga_id,
                expected_version,
            }
        } else {
            Error::NotFound(saga_id)
        })));
    }
    insert_events(conn, saga_id, expected_version, events, recorded_at).await?;
    Ok(Step::Done(expected_version + events.len() as u64))
}

/// Writes a new saga's searchable tags (see `migrations/*/0002_saga_tags.sql`).
async fn insert_tags(
    conn: &mut AnyConnection,
    saga_id: Uuid,
    tags: &[(String, String)],
    created_at: Timestamp,
) -> Result<()> {
    for (key, value) in tags {
        sqlx::query(
            "INSERT INTO saga_tags (saga_id, key, value, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(saga_id.to_string())
        .bind(key.as_str())
        .bind(value.as_str())
        .bind(created_at.millis())
        .execute(&mut *conn)
        .await
        .map_err(Error::Database)?;
    }
    Ok(())
}

/// Inserts `events` as sequences `after + 1 ..`, a few hundred rows per statement.
async fn insert_events(
    conn: &mut AnyConnection,
    saga_id: Uuid,
    after: u64,
    events: &[NewEvent],
    recorded_at: Timestamp,
) -> Result<()> {
    let id = saga_id.to_string();
    let mut sequence = sql_int(saga_id, after)?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO saga_events (saga_id, sequence, event_type, schema_version, payload, \
             occurred_at, recorded_at) VALUES ",
        );
        for row in 0..chunk.len() {
            let p = row * 7;
            let separator = if row == 0 { "" } else { ", " };
            // Writing to a String cannot fail.
            let _ = write!(
                sql,
                "{separator}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            );
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for event in chunk {
            // `new_version` checked that the last sequence fits, so this cannot overflow.
            sequence += 1;
            let payload = serde_json::to_string(&event.payload)
                .map_err(|e| Error::Corrupt(format!("unserializable payload: {e}")))?;
            query = query
                .bind(id.clone())
                .bind(sequence)
                .bind(event.event_type.clone())
                .bind(i64::from(event.schema_version))
                .bind(payload)
                .bind(event.occurred_at.millis())
                .bind(recorded_at.millis());
        }
        match query.execute(&mut *conn).await {
            Ok(_) => {}
            // The guard itself: another writer stored one of these sequences first. On
            // PostgreSQL the transaction is now aborted, so this is a failed statement (the
            // batch is run again write by write, and this write then answers the conflict).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::Conflict {
                    saga_id,
                    expected_version: after,
                });
            }
            Err(e) => return Err(Error::Database(e)),
        }
    }
    Ok(())
}

/// The version after appending `count` events to `after`, as stored (BIGINT).
fn new_version(saga_id: Uuid, after: u64, count: usize) -> Result<i64> {
    let version = u64::try_from(count)
        .ok()
        .and_then(|count| after.checked_add(count))
        .ok_or_else(|| Error::Corrupt(format!("saga {saga_id}: version overflow")))?;
    sql_int(saga_id, version)
}
