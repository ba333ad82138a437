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

use crate::db::{self, Backend};
use saga_protocol::Timestamp;
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
}

impl Store {
    /// Opens `url` (`sqlite:<path>` or `postgres://…`) with at most `max_connections` and
    /// applies the participant migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, db::Error> {
        let (pool, backend) = db::connect(
            url,
            max_connections,
            &SQLITE_MIGRATIONS,
            &POSTGRES_MIGRATIONS,
        )
        .await?;
        Ok(Store { pool, backend })
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
    /// which surface as [`handler::Error::Conflict`](crate::handler::Error::Conflict).
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
    sqlx::query_scalar("SELECT reply FROM inbox WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(conn)
        .await
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
    sqlx::query("INSERT INTO inbox (message_id, reply, received_at) VALUES ($1, $2, $3)")
        .bind(message_id)
        .bind(reply)
        .bind(now.millis())
        .execute(conn)
        .await?;
    Ok(())
}
