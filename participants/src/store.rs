//! A participant's database: the connection pool, write transactions, and the durable inbox.
//!
//! The inbox (`inbox(message_id PK, reply, received_at)`) records every handled message id
//! with the reply given the first time, in the same transaction as the business change, so a
//! duplicate delivery changes nothing and gets that reply again (DESIGN guarantee 4). Its
//! primary key is what makes two concurrent deliveries of one message unable to both apply.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = saga_participants::store::Store::open("sqlite:account.db", 4).await?;
//! let mut tx = store.begin().await?;
//! let seen = saga_participants::store::recorded(&mut tx, "some-message-id").await?;
//! assert!(seen.is_none());
//! tx.rollback().await?;
//! # Ok(()) }
//! ```

use crate::retention::InboxWindow;
use saga_protocol::Timestamp;
use saga_sql::{self as db, Backend};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

/// Schema of a participant database on SQLite.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// Schema of a participant database on PostgreSQL.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// A migrated participant database. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    inbox_window: InboxWindow,
}

impl Store {
    /// Opens `url` (`sqlite:<path>` or `postgres://…`) with at most `max_connections` and
    /// applies the participant migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, db::Error> {
        Self::open_with(url, max_connections, db::Durability::default()).await
    }

    /// [`Store::open`] with what an acknowledged command survives.
    pub async fn open_with(
        url: &str,
        max_connections: u32,
        durability: db::Durability,
    ) -> Result<Self, db::Error> {
        let (pool, backend) = db::connect(
            url,
            max_connections,
            durability,
            &SQLITE_MIGRATIONS,
            &POSTGRES_MIGRATIONS,
        )
        .await?;
        Ok(Store {
            pool,
            backend,
            inbox_window: InboxWindow::default(),
        })
    }

    /// The same store with its inbox kept for `window` (see [`crate::retention`]).
    pub fn with_inbox_window(self, window: InboxWindow) -> Self {
        Store {
            inbox_window: window,
            ..self
        }
    }

    /// How long its inbox entries are kept, and which commands are too old to apply.
    pub fn inbox_window(&self) -> InboxWindow {
        self.inbox_window
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken up front, so concurrent
    /// writers queue on `busy_timeout` instead of failing when a read lock cannot be upgraded.
    /// PostgreSQL runs at READ COMMITTED; races are settled by primary keys and version checks,
    /// which surface as [`participant::Error::Conflict`](crate::participant::Error::Conflict).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The reply recorded for `message_id`, if it was handled before.
pub async fn recorded(
    conn: &mut AnyConnection,
    message_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(recorded_many(conn, &[message_id]).await?.remove(message_id))
}

/// Records `reply` as the answer to `message_id`.
///
/// Fails with a unique violation when another transaction recorded the same id first; the
/// caller then rolls back and answers with the reply that one recorded.
pub async fn record(
    conn: &mut AnyConnection,
    message_id: &str,
    reply: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    record_many(conn, &[(message_id, reply.to_string())], now).await
}

/// The replies recorded for any of `message_ids`, by message id, in one statement per 500.
pub async fn recorded_many(
    conn: &mut AnyConnection,
    message_ids: &[&str],
) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
    let mut found = std::collections::HashMap::new();
    for chunk in message_ids.chunks(ROWS_PER_STATEMENT) {
        // Only generated placeholders are spliced in; the ids themselves are bound.
        let sql = format!(
            "SELECT message_id, reply FROM inbox WHERE message_id IN ({})",
            db::placeholders(1, chunk.len())
        );
        // Kept prepared only for one row: each row count is a statement text of its own.
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
            .persistent(chunk.len() == 1);
        for id in chunk {
            query = query.bind(*id);
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Records many `(message id, reply)` answers, one statement per 500; a unique violation as
/// for [`record`].
pub async fn record_many(
    conn: &mut AnyConnection,
    replies: &[(&str, String)],
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    for chunk in replies.chunks(ROWS_PER_STATEMENT) {
        let rows = (0..chunk.len())
            .map(|row| format!("(${}, ${}, ${})", row * 3 + 1, row * 3 + 2, row * 3 + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO inbox (message_id, reply, received_at) VALUES {rows}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == 1);
        for (id, reply) in chunk {
            query = query.bind(*id).bind(reply.as_str()).bind(now.millis());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rows per statement of [`recorded_many`] and [`record_many`] (3 binds a row at most).
const ROWS_PER_STATEMENT: usize = 500;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// SQLite's `synchronous` on every connection of the pool: 1 is NORMAL, 2 is FULL.
    async fn synchronous(durability: db::Durability) -> Vec<i64> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("p.db").display());
        let store = Store::open_with(&url, 2, durability).await.unwrap();
        let mut held = Vec::new();
        let mut modes = Vec::new();
        for _ in 0..2 {
            let mut conn = store.pool().acquire().await.unwrap();
            let (mode,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            modes.push(mode);
            held.push(conn);
        }
        modes
    }

    #[tokio::test]
    async fn power_durability_syncs_every_commit_and_process_durability_does_not() {
        assert_eq!(synchronous(db::Durability::Process).await, [1, 1]);
        assert_eq!(synchronous(db::Durability::Power).await, [2, 2]);
    }
}
