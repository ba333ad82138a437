//! The SQL of event-store writes: one write inside a transaction ([`create_in`],
//! [`append_in`]), and the writes of a batch set by set ([`insert_sagas`], [`update_sagas`],
//! [`insert_events`], [`insert_tags`]), so a batch of many sagas costs a handful of
//! statements rather than a few per saga.
//!
//! Every function runs inside the caller's transaction. An `Err` means a statement failed
//! (on PostgreSQL the transaction is then unusable); a clean refusal (a stale version, a used
//! key) is a value, [`Step::Refused`], and leaves the transaction going.

use super::rows::{current_version, decode_record, select_sagas, sql_int};
use super::{Created, Error, NewEvent, NewSaga, Result, Summary};
use saga_protocol::Timestamp;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use std::collections::HashSet;
use std::fmt::Write as _;
use uuid::Uuid;

/// Events per INSERT statement. At 8 binds a row this stays far below the bind limits (SQLite
/// 32766, PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;
/// Sagas per INSERT or UPDATE statement of a batch (9 binds a row at most).
const SAGAS_PER_STATEMENT: usize = 256;

/// What a write did inside a transaction that is still usable.
pub(super) enum Step<T> {
    /// Written; committed with the transaction.
    Done(T),
    /// Refused without a failed statement: nothing written, the transaction goes on.
    Refused(Result<T>),
}

/// The events of one saga to insert after sequence `after`.
pub(super) struct EventRows<'a> {
    pub saga_id: Uuid,
    pub after: u64,
    pub events: &'a [NewEvent],
    pub recorded_at: Timestamp,
}

/// Whether a statement of `rows` rows is kept prepared on its connection. Each row count is a
/// statement text of its own, and a prepared statement of hundreds of rows holds a large
/// program: kept for every count a batch may have, they held tens of megabytes per
/// connection. Only single-row statements, the ones an idle system repeats, stay prepared.
fn cached(rows: usize) -> bool {
    rows == 1
}

/// `($1, $2, …), ($n, …)`: `rows` groups of `width` placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let mut sql = String::new();
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            let separator = if column == 0 { "" } else { ", " };
            // Writing to a String cannot fail.
            let _ = write!(sql, "{separator}${}", row * width + column + 1);
        }
        sql.push(')');
    }
    sql
}

/// Inserts the read-model rows of new sagas, skipping any whose id or idempotency key is
/// taken, and returns the ids that were inserted.
pub(super) async fn insert_sagas(
    conn: &mut AnyConnection,
    sagas: &[(&NewSaga, usize, &Summary, Timestamp)],
) -> Result<HashSet<Uuid>> {
    let mut inserted = HashSet::with_capacity(sagas.len());
    for chunk in sagas.chunks(SAGAS_PER_STATEMENT) {
        // DO NOTHING covers both unique keys (saga_id, and name with idempotency_key), also
        // between two rows of this statement: the second one with a key is skipped.
        let sql = format!(
            "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
             idempotency_key, input_digest, created_at, updated_at, due_at, deadline_at) \
             VALUES {} ON CONFLICT DO NOTHING RETURNING saga_id",
            placeholders(chunk.len(), 11)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cached(chunk.len()));
        for (saga, events, summary, recorded_at) in chunk {
            query = query
                .bind(saga.saga_id.to_string())
                .bind(saga.name.as_str())
                .bind(i64::from(saga.definition_version))
                .bind(summary.status.as_str())
                .bind(new_version(saga.saga_id, 0, *events)?)
                .bind(saga.idempotency_key.as_deref())
                .bind(saga.input_digest.as_str())
                .bind(recorded_at.millis())
                .bind(recorded_at.millis())
                .bind(summary.due_at.map(Timestamp::millis))
                .bind(saga.deadline_at.map(Timestamp::millis));
        }
        for row in query.fetch_all(&mut *conn).await.map_err(Error::Database)? {
            inserted.insert(returned_id(&row)?);
        }
    }
    Ok(inserted)
}

/// Compare-and-set of many sagas' read-model rows at once: each row moves from its expected
/// version to its new one only if it is still at the expected one. Returns the ids that moved.
pub(super) async fn update_sagas(
    conn: &mut AnyConnection,
    appends: &[(Uuid, u64, usize, &Summary, Timestamp)],
) -> Result<HashSet<Uuid>> {
    let mut updated = HashSet::with_capacity(appends.len());
    for chunk in appends.chunks(SAGAS_PER_STATEMENT) {
        // VALUES columns are column1… on both SQLite and PostgreSQL. On PostgreSQL the row
        // locks taken here make a concurrent writer wait, then re-check the version.
        let sql = format!(
            "UPDATE sagas SET status = v.column2, version = v.column3, updated_at = v.column4, \
             due_at = v.column6 \
             FROM (VALUES {}) AS v \
             WHERE sagas.saga_id = v.column1 AND sagas.version = v.column5 \
             RETURNING saga_id",
            placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cached(chunk.len()));
        for (saga_id, expected, events, summary, recorded_at) in chunk {
            query = query
                .bind(saga_id.to_string())
                .bind(summary.status.as_str())
                .bind(new_version(*saga_id, *expected, *events)?)
                .bind(recorded_at.millis())
                .bind(sql_int(*saga_id, *expected)?)
                .bind(summary.due_at.map(Timestamp::millis));
        }
        for row in query.fetch_all(&mut *conn).await.map_err(Error::Database)? {
            updated.insert(returned_id(&row)?);
        }
    }
    Ok(updated)
}

fn returned_id(row: &sqlx::any::AnyRow) -> Result<Uuid> {
    let id: String = row
        .try_get("saga_id")
        .map_err(|e| Error::Corrupt(format!("column `saga_id`: {e}")))?;
    Uuid::parse_str(&id).map_err(|e| Error::Corrupt(format!("saga id `{id}`: {e}")))
}

/// Why a create that [`insert_sagas`] skipped was refused: its idempotency key names an
/// existing saga, or (no key) its id is taken.
/// The outer `Result` fails when the look-up statement does.
pub(super) async fn refused_create(
    conn: &mut AnyConnection,
    saga: &NewSaga,
) -> Result<Result<Created>> {
    // The key wins over the id: a retried start with a key is answered with its saga even if
    // the caller also reused the saga id.
    let existing = match saga.idempotency_key.as_deref() {
        Some(key) => sqlx::query(select_sagas!("WHERE name = $1 AND idempotency_key = $2"))
            .bind(saga.name.as_str())
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::Database)?,
        None => None,
    };
    Ok(match existing {
        Some(row) => decode_record(&row).map(Created::Existing),
        None => Err(Error::Conflict {
            saga_id: saga.saga_id,
            expected_version: 0,
        }),
    })
}

/// Why an append that [`update_sagas`] did not move was refused: another writer moved the
/// saga on, or there is no such saga. The outer `Result` fails when the look-up does.
pub(super) async fn refused_append(
    conn: &mut AnyConnection,
    saga_id: Uuid,
    expected_version: u64,
) -> Result<Result<u64>> {
    let exists = current_version(&mut *conn, saga_id).await?.is_some();
    Ok(Err(if exists {
        Error::Conflict {
            saga_id,
            expected_version,
        }
    } else {
        Error::NotFound(saga_id)
    }))
}

/// Creates one saga inside `conn`'s transaction.
///
/// The write comes first on purpose: on SQLite it takes the write lock before any read, and
/// on PostgreSQL a concurrent insert of the same key waits for ours to commit.
pub(super) async fn create_in(
    conn: &mut AnyConnection,
    saga: &NewSaga,
    events: &[NewEvent],
    summary: &Summary,
    recorded_at: Timestamp,
) -> Result<Step<Created>> {
    let inserted = insert_sagas(conn, &[(saga, events.len(), summary, recorded_at)]).await?;
    if !inserted.contains(&saga.saga_id) {
        return Ok(Step::Refused(refused_create(conn, saga).await?));
    }
    let rows = EventRows {
        saga_id: saga.saga_id,
        after: 0,
        events,
        recorded_at,
    };
    insert_events(conn, &[rows]).await?;
    insert_tags(conn, &[(saga, recorded_at)]).await?;
    Ok(Step::Done(Created::New))
}

/// Appends at least one event to one saga inside `conn`'s transaction: compare-and-set on
/// the read model first, so a stale writer is refused before it inserts anything.
pub(super) async fn append_in(
    conn: &mut AnyConnection,
    saga_id: Uuid,
    expected_version: u64,
    events: &[NewEvent],
    summary: &Summary,
    recorded_at: Timestamp,
) -> Result<Step<u64>> {
    let moved = update_sagas(
        conn,
        &[(
            saga_id,
            expected_version,
            events.len(),
            summary,
            recorded_at,
        )],
    )
    .await?;
    if !moved.contains(&saga_id) {
        return Ok(Step::Refused(
            refused_append(conn, saga_id, expected_version).await?,
        ));
    }
    let rows = EventRows {
        saga_id,
        after: expected_version,
        events,
        recorded_at,
    };
    insert_events(conn, &[rows]).await?;
    Ok(Step::Done(expected_version + events.len() as u64))
}

/// Writes new sagas' searchable tags (see `migrations/*/0002_saga_tags.sql`), many rows per
/// statement.
pub(super) async fn insert_tags(
    conn: &mut AnyConnection,
    sagas: &[(&NewSaga, Timestamp)],
) -> Result<()> {
    let rows: Vec<(Uuid, &str, &str, Timestamp)> = sagas
        .iter()
        .flat_map(|(saga, at)| {
            saga.tags
                .iter()
                .map(|(key, value)| (saga.saga_id, key.as_str(), value.as_str(), *at))
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO saga_tags (saga_id, key, value, created_at) VALUES {} \
             ON CONFLICT DO NOTHING",
            placeholders(chunk.len(), 4)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cached(chunk.len()));
        for (saga_id, key, value, at) in chunk {
            query = query
                .bind(saga_id.to_string())
                .bind(*key)
                .bind(*value)
                .bind(at.millis());
        }
        query.execute(&mut *conn).await.map_err(Error::Database)?;
    }
    Ok(())
}

/// Takes the next `count` positions of the feed, and returns the first. The UPDATE locks the
/// feed's one row until the transaction ends, so the next writer takes its positions only
/// after this one committed (or rolled back, giving them back): positions follow commit
/// order, without holes. Every writer calls it as its last statement but the tags, so the
/// lock is held for as short a time as it can be.
async fn take_positions(conn: &mut AnyConnection, count: usize) -> Result<i64> {
    let count =
        i64::try_from(count).map_err(|_| Error::Corrupt(format!("{count} events in one write")))?;
    let head: i64 =
        sqlx::query_scalar("UPDATE saga_feed SET head = head + $1 WHERE id = 1 RETURNING head")
            .bind(count)
            .persistent(true)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::Database)?;
    Ok(head - count + 1)
}

/// Inserts the events of many sagas, each as sequences `after + 1 ..`, with the next feed
/// positions in the order given, a few hundred rows per statement.
pub(super) async fn insert_events(conn: &mut AnyConnection, sagas: &[EventRows<'_>]) -> Result<()> {
    let mut rows = Vec::new();
    for saga in sagas {
        // Checks that the last sequence fits, so the additions below cannot overflow.
        new_version(saga.saga_id, saga.after, saga.events.len())?;
        let first = sql_int(saga.saga_id, saga.after)?;
        for (event, sequence) in saga.events.iter().zip(first + 1..) {
            rows.push((saga, sequence, event));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let first_position = take_positions(conn, rows.len()).await?;
    let positioned: Vec<_> = rows.iter().zip(first_position..).collect();
    for chunk in positioned.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO saga_events (saga_id, sequence, position, event_type, schema_version, \
             payload, occurred_at, recorded_at) VALUES {}",
            placeholders(chunk.len(), 8)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cached(chunk.len()));
        for ((saga, sequence, event), position) in chunk {
            let payload = serde_json::to_string(&event.payload)
                .map_err(|e| Error::Corrupt(format!("unserializable payload: {e}")))?;
            query = query
                .bind(saga.saga_id.to_string())
                .bind(*sequence)
                .bind(*position)
                .bind(event.event_type.clone())
                .bind(i64::from(event.schema_version))
                .bind(payload)
                .bind(event.occurred_at.millis())
                .bind(saga.recorded_at.millis());
        }
        match query.execute(&mut *conn).await {
            Ok(_) => {}
            // The guard itself: another writer stored one of these sequences first. On
            // PostgreSQL the transaction is now aborted, so this is a failed statement (a
            // batch is run again write by write, and the write then answers the conflict).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let ((saga, _, _), _) = chunk[0];
                return Err(Error::Conflict {
                    saga_id: saga.saga_id,
                    expected_version: saga.after,
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
