//! The read model of the SQL store: the list, search, counts by status, sagas started per
//! bucket, and the overdue count, each one query over the `sagas` indexes.

use super::{Bind, SqlStore, search_sql};
use crate::store::rows::{decode_record, get, select_sagas, to_u64};
use crate::store::{Error, ReadModel, Result, SagaQuery, SagaRecord};
use saga_protocol::Timestamp;
use sqlx::AssertSqlSafe;

impl ReadModel for SqlStore {
    async fn list(&self, limit: u32) -> Result<Vec<SagaRecord>> {
        let rows = sqlx::query(select_sagas!(
            "ORDER BY created_at DESC, saga_id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        rows.iter().map(decode_record).collect()
    }

    async fn search(&self, query: &SagaQuery) -> Result<Vec<SagaRecord>> {
        let (sql, binds) = search_sql(query);
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            q = match value {
                Bind::Text(text) => q.bind(text),
                Bind::Int(int) => q.bind(int),
            };
        }
        let rows = q.fetch_all(&self.pool).await.map_err(Error::Database)?;
        rows.iter().map(decode_record).collect()
    }

    async fn status_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        // One pass over the (status, created_at) index.
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM sagas GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(Error::Database)?;
        rows.iter()
            .map(|row| Ok((get(row, "status")?, to_u64(get(row, "n")?, "count")?)))
            .collect()
    }

    async fn started_per_bucket(
        &self,
        since: Timestamp,
        bucket: std::time::Duration,
        buckets: usize,
    ) -> Result<Vec<u64>> {
        let width = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX).max(1);
        let spans = i64::try_from(buckets).unwrap_or(i64::MAX);
        let until = since.millis().saturating_add(width.saturating_mul(spans));
        // One range scan of the created_at index, grouped in the database.
        let rows = sqlx::query(
            "SELECT (created_at - $1) / $2 AS bucket, COUNT(*) AS n FROM sagas \
             WHERE created_at >= $1 AND created_at < $3 GROUP BY (created_at - $1) / $2",
        )
        .bind(since.millis())
        .bind(width)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        let mut counts = vec![0; buckets];
        for row in &rows {
            let index = to_u64(get(row, "bucket")?, "bucket")?;
            if let Some(count) = usize::try_from(index).ok().and_then(|i| counts.get_mut(i)) {
                *count = to_u64(get(row, "n")?, "count")?;
            }
        }
        Ok(counts)
    }

    async fn count_overdue(&self, statuses: &[&str], before: Timestamp) -> Result<u64> {
        if statuses.is_empty() {
            return Ok(0);
        }
        // The (status, created_at) index finds the active sagas; few are active at once.
        let sql = format!(
            "SELECT COUNT(*) AS n FROM sagas WHERE status IN ({}) \
             AND COALESCE(deadline_at, created_at) < ${}",
            saga_sql::placeholders(1, statuses.len()),
            statuses.len() + 1
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for status in statuses {
            q = q.bind(*status);
        }
        let row = q
            .bind(before.millis())
            .fetch_one(&self.pool)
            .await
            .map_err(Error::Database)?;
        to_u64(get(&row, "n")?, "count")
    }
}
