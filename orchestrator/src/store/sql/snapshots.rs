//! Sagas' snapshots in `saga_snapshots` (migrations/*/0008).

use super::SqlStore;
use crate::store::rows::{get, sql_int, to_u32, to_u64};
use crate::store::{Error, Result, SagaRecord, Snapshot, Snapshots, StoredEvent};
use saga_protocol::Timestamp;
use uuid::Uuid;

impl Snapshots for SqlStore {
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let state = serde_json::to_string(&snapshot.state)
            .map_err(|e| Error::Corrupt(format!("unserializable snapshot: {e}")))?;
        // A snapshot never replaces a later one (two replicas, or a slow writer).
        sqlx::query(
            "INSERT INTO saga_snapshots (saga_id, version, schema_version, definition_hash, \
             state, taken_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (saga_id) DO UPDATE \
             SET version = excluded.version, schema_version = excluded.schema_version, \
             definition_hash = excluded.definition_hash, state = excluded.state, \
             taken_at = excluded.taken_at WHERE saga_snapshots.version < excluded.version",
        )
        .bind(snapshot.saga_id.to_string())
        .bind(sql_int(snapshot.saga_id, snapshot.version)?)
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.definition_hash.as_deref())
        .bind(state)
        .bind(snapshot.taken_at.millis())
        .execute(&self.pool)
        .await
        .map_err(Error::Database)?;
        Ok(())
    }

    async fn snapshot(&self, saga_id: Uuid) -> Result<Option<Snapshot>> {
        let Some(row) = sqlx::query(
            "SELECT version, schema_version, definition_hash, state, taken_at \
             FROM saga_snapshots WHERE saga_id = $1",
        )
        .bind(saga_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::Database)?
        else {
            return Ok(None);
        };
        let state: String = get(&row, "state")?;
        Ok(Some(Snapshot {
            saga_id,
            version: to_u64(get(&row, "version")?, "version")?,
            schema_version: to_u32(get(&row, "schema_version")?, "schema_version")?,
            definition_hash: get(&row, "definition_hash")?,
            state: serde_json::from_str(&state)
                .map_err(|e| Error::Corrupt(format!("snapshot is not JSON: {e}")))?,
            taken_at: Timestamp(get(&row, "taken_at")?),
        }))
    }

    async fn load_after(
        &self,
        saga_id: Uuid,
        after: u64,
    ) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        self.load_from(saga_id, after).await
    }

    async fn drop_snapshots(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM saga_snapshots")
            .execute(&self.pool)
            .await
            .map_err(Error::Database)?;
        Ok(done.rows_affected())
    }
}
