//! The read model of the SQL store as a projection of its log: both sides of one saga read
//! consistently, and its rows rewritten under the lock its appends take.

use super::SqlStore;
use crate::store::rows::{
    decode_event, decode_record, event_columns, get, parse_uuid, saga_columns, sql_int,
};
use crate::store::writes::insert_tags;
use crate::store::{Error, NewSaga, Projected, Projection, Result, SagaRow, StoredEvent};
use saga_protocol::Timestamp;
use sqlx::AnyConnection;
use uuid::Uuid;

impl Projection for SqlStore {
    async fn saga_ids(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Uuid>> {
        // Both sides, so that a row without a log and a log without a row are both found.
        // Each half is a range scan of a primary key or unique index.
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT saga_id FROM (\
               SELECT DISTINCT saga_id FROM saga_events WHERE saga_id > $1 \
               UNION SELECT saga_id FROM sagas WHERE saga_id > $1\
             ) AS ids ORDER BY saga_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        rows.iter()
            .map(|row| parse_uuid(&get::<String>(row, "saga_id")?))
            .collect()
    }

    async fn projected(&self, saga_id: Uuid) -> Result<Projected> {
        let mut conn = self.pool.acquire().await.map_err(Error::Database)?;
        // The log first: an append that commits after this read shows in the row as a higher
        // version, and the log is read again up to that version (not further: a later append
        // would be ahead of the row read). Read the other way round, such an append would
        // look like a log ahead of its row.
        let mut events = log(&mut conn, saga_id, i64::MAX).await?;
        let row = row(&mut conn, saga_id).await?;
        if let Some(row) = &row
            && row.record.version > events.len() as u64
        {
            let version = sql_int(saga_id, row.record.version)?;
            events = log(&mut conn, saga_id, version).await?;
        }
        Ok(Projected { events, row })
    }

    async fn reproject(
        &self,
        saga_id: Uuid,
        log_version: u64,
        row: Option<SagaRow>,
    ) -> Result<bool> {
        let id = saga_id.to_string();
        let mut tx = self.pool.begin().await.map_err(Error::Database)?;
        // A write first, as every append's is: it takes the row's lock on PostgreSQL and the
        // database's write lock on SQLite, so an append in flight commits before the log is
        // read below, and the next one waits for this transaction. A saga without a row has
        // no appends to wait for: an append needs the row.
        sqlx::query("UPDATE sagas SET version = version WHERE saga_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
        let logged: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(sequence), 0) FROM saga_events WHERE saga_id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::Database)?;
        if logged != sql_int(saga_id, log_version)? {
            tx.rollback().await.map_err(Error::Database)?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM saga_tags WHERE saga_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
        match row {
            None => {
                sqlx::query("DELETE FROM sagas WHERE saga_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::Database)?;
            }
            Some(row) => write_row(&mut tx, saga_id, row).await?,
        }
        tx.commit().await.map_err(Error::Database)?;
        Ok(true)
    }
}

/// The events of the saga up to sequence `up_to`, in sequence order.
async fn log(conn: &mut AnyConnection, saga_id: Uuid, up_to: i64) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM saga_events WHERE saga_id = $1 AND sequence <= $2 ORDER BY sequence"
    ))
    .bind(saga_id.to_string())
    .bind(up_to)
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::Database)?;
    rows.iter().map(decode_event).collect()
}

/// The saga's `sagas` row with its timer and its tags, if it has one.
async fn row(conn: &mut AnyConnection, saga_id: Uuid) -> Result<Option<SagaRow>> {
    let Some(row) = sqlx::query(concat!(
        "SELECT ",
        saga_columns!(),
        ", due_at FROM sagas WHERE saga_id = $1"
    ))
    .bind(saga_id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::Database)?
    else {
        return Ok(None);
    };
    let record = decode_record(&row)?;
    let due_at = get::<Option<i64>>(&row, "due_at")?.map(Timestamp);
    let tags = sqlx::query("SELECT key, value FROM saga_tags WHERE saga_id = $1")
        .bind(saga_id.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::Database)?;
    let mut tags = tags
        .iter()
        .map(|tag| Ok((get(tag, "key")?, get(tag, "value")?)))
        .collect::<Result<Vec<(String, String)>>>()?;
    tags.sort();
    Ok(Some(SagaRow {
        record,
        due_at,
        tags,
    }))
}

/// Writes the saga's `sagas` row (keeping the idempotency key of a row that exists) and its
/// tags, inside the caller's transaction, after its old tags were deleted.
async fn write_row(conn: &mut AnyConnection, saga_id: Uuid, row: SagaRow) -> Result<()> {
    let r = &row.record;
    sqlx::query(
        "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
         idempotency_key, input_digest, created_at, updated_at, due_at, deadline_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (saga_id) DO UPDATE SET name = excluded.name, \
         definition_version = excluded.definition_version, status = excluded.status, \
         version = excluded.version, input_digest = excluded.input_digest, \
         created_at = excluded.created_at, updated_at = excluded.updated_at, \
         due_at = excluded.due_at, deadline_at = excluded.deadline_at",
    )
    .bind(saga_id.to_string())
    .bind(r.name.as_str())
    .bind(i64::from(r.definition_version))
    .bind(r.status.as_str())
    .bind(sql_int(saga_id, r.version)?)
    .bind(r.idempotency_key.as_deref())
    .bind(r.input_digest.as_str())
    .bind(r.created_at.millis())
    .bind(r.updated_at.millis())
    .bind(row.due_at.map(Timestamp::millis))
    .bind(r.deadline_at.map(Timestamp::millis))
    .execute(&mut *conn)
    .await
    .map_err(Error::Database)?;
    let saga = NewSaga {
        saga_id,
        name: r.name.clone(),
        definition_version: r.definition_version,
        idempotency_key: None,
        input_digest: r.input_digest.clone(),
        tags: row.tags,
        deadline_at: r.deadline_at,
    };
    insert_tags(conn, &[(&saga, r.created_at)]).await
}
