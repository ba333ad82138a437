//! The archive in `saga_archive` and `saga_archive_events` (migrations/*/0009).
//!
//! A sweep is one transaction. Its first statement claims the sagas: a `DELETE … RETURNING`
//! of their `sagas` rows, whose conditions are checked again on each row as it is deleted, so a
//! saga appended to in the meantime (a newer `updated_at`) is not claimed, and two replicas
//! sweeping at once never both claim one saga (the second waits for the first's row lock, then
//! finds the row gone). The claimed sagas' events, tags and snapshots then follow.

use super::SqlStore;
use crate::store::rows::{decode_event, decode_record, event_columns, get, saga_columns, sql_int};
use crate::store::{Archive, Archived, Error, Result, Retire, SagaRecord};
use saga_protocol::Timestamp;
use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

impl Archive for SqlStore {
    async fn archive(&self, retire: &Retire<'_>, at: Timestamp) -> Result<Vec<Uuid>> {
        if retire.statuses.is_empty() || retire.limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(Error::Database)?;
        let claimed = claim(&mut tx, retire).await?;
        let mut moved = Vec::with_capacity(claimed.len());
        for record in claimed {
            move_one(&mut tx, &record, at).await?;
            moved.push(record.saga_id);
        }
        tx.commit().await.map_err(Error::Database)?;
        Ok(moved)
    }

    async fn archived(&self, saga_id: Uuid) -> Result<Option<Archived>> {
        let id = saga_id.to_string();
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            saga_columns!(),
            ", tags, archived_at FROM saga_archive WHERE saga_id = $1"
        ))
        .bind(&id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::Database)?
        else {
            return Ok(None);
        };
        let record = decode_record(&row)?;
        let tags: String = get(&row, "tags")?;
        let tags = serde_json::from_str(&tags)
            .map_err(|e| Error::Corrupt(format!("saga {saga_id}: archived tags: {e}")))?;
        let archived_at = Timestamp(get(&row, "archived_at")?);
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM saga_archive_events WHERE saga_id = $1 ORDER BY sequence"
        ))
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        let events = rows.iter().map(decode_event).collect::<Result<Vec<_>>>()?;
        if events.len() as u64 != record.version {
            return Err(Error::Corrupt(format!(
                "archived saga {saga_id} is at version {} but {} of its events are archived",
                record.version,
                events.len()
            )));
        }
        Ok(Some(Archived {
            record,
            tags,
            events,
            archived_at,
        }))
    }

    async fn archived_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM saga_archive")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::Database)?;
        crate::store::rows::to_u64(count, "archived count")
    }
}

/// Deletes the `sagas` rows `retire` selects and returns them.
async fn claim(tx: &mut AnyConnection, retire: &Retire<'_>) -> Result<Vec<SagaRecord>> {
    // Only generated placeholders are spliced in; every value is bound.
    let statuses = |from: usize| saga_sql::placeholders(from, retire.statuses.len());
    let n = retire.statuses.len();
    let (outer, inner) = (statuses(1), statuses(n + 3));
    let (ended, created) = (n + 1, n + 2);
    let (inner_ended, inner_created, limit) = (2 * n + 3, 2 * n + 4, 2 * n + 5);
    // On the (status, created_at) index. The outer conditions repeat the inner ones because
    // they are what PostgreSQL checks again on a row another transaction changed meanwhile.
    let sql = format!(
        "DELETE FROM sagas WHERE status IN ({outer}) AND updated_at < ${ended} \
         AND created_at < ${created} AND saga_id IN (SELECT saga_id FROM sagas \
         WHERE status IN ({inner}) AND updated_at < ${inner_ended} \
         AND created_at < ${inner_created} ORDER BY created_at, saga_id LIMIT ${limit}) \
         RETURNING {}",
        saga_columns!()
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for status in retire.statuses {
        query = query.bind(*status);
    }
    query = query
        .bind(retire.ended_before.millis())
        .bind(retire.created_before.millis());
    for status in retire.statuses {
        query = query.bind(*status);
    }
    let rows = query
        .bind(retire.ended_before.millis())
        .bind(retire.created_before.millis())
        .bind(i64::from(retire.limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::Database)?;
    rows.iter().map(decode_record).collect()
}

/// Writes the claimed saga `record` to the archive with its tags and events, and deletes them
/// (and its snapshot) from the hot tables.
async fn move_one(tx: &mut AnyConnection, record: &SagaRecord, at: Timestamp) -> Result<()> {
    let id = record.saga_id.to_string();
    let rows = sqlx::query("SELECT key, value FROM saga_tags WHERE saga_id = $1 ORDER BY key")
        .bind(&id)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::Database)?;
    let tags = rows
        .iter()
        .map(|row| Ok((get::<String>(row, "key")?, get::<String>(row, "value")?)))
        .collect::<Result<Vec<(String, String)>>>()?;
    let tags = serde_json::to_string(&tags)
        .map_err(|e| Error::Corrupt(format!("saga {id}: tags: {e}")))?;
    sqlx::query(concat!(
        "INSERT INTO saga_archive (",
        saga_columns!(),
        ", tags, archived_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&id)
    .bind(&record.name)
    .bind(i64::from(record.definition_version))
    .bind(&record.status)
    .bind(sql_int(record.saga_id, record.version)?)
    .bind(record.idempotency_key.as_deref())
    .bind(&record.input_digest)
    .bind(record.created_at.millis())
    .bind(record.updated_at.millis())
    .bind(record.deadline_at.map(Timestamp::millis))
    .bind(tags)
    .bind(at.millis())
    .execute(&mut *tx)
    .await
    .map_err(Error::Database)?;
    sqlx::query(concat!(
        "INSERT INTO saga_archive_events (",
        event_columns!(),
        ") SELECT ",
        event_columns!(),
        " FROM saga_events WHERE saga_id = $1"
    ))
    .bind(&id)
    .execute(&mut *tx)
    .await
    .map_err(Error::Database)?;
    for table in ["saga_events", "saga_tags", "saga_snapshots"] {
        // Fixed table names only.
        let sql = format!("DELETE FROM {table} WHERE saga_id = $1");
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
    }
    Ok(())
}
