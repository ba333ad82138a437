//! [`EventStore`] on SQL through sqlx's `Any` driver: SQLite (one machine, nothing to install)
//! or PostgreSQL (production, several orchestrator replicas), with one SQL text for both.
//!
//! The main tables (see `migrations/{sqlite,postgres}/`):
//! - `saga_events`, the append-only log. `UNIQUE (saga_id, sequence)` is the last line of the
//!   optimistic-concurrency guard: two writers cannot both store sequence n of one saga.
//! - `sagas`, the read model, updated in the same transaction as each append. Its
//!   `UPDATE … WHERE version = $expected` is the first line: it catches a stale writer before any
//!   event is inserted, and on PostgreSQL its row lock serializes writers of one saga.
//! - `saga_tags`, the start input's scalar fields, written with the saga, for search by input
//!   field on an index instead of a scan of the log.
//! - `saga_definitions`, every definition version loaded, with its source and content hash
//!   (see [`super::definitions`]).
//!
//! Beside them: `saga_feed` (the feed's head), `saga_snapshots` (a cache of folded states),
//! and `saga_archive` with `saga_archive_events`, where finished sagas are moved (see
//! [`super::Archive`]).
//!
//! ```no_run
//! use saga_orchestrator::store::{EventLog, ReadModel, Schedule, SqlStore};
//!
//! # async fn demo() -> saga_orchestrator::store::Result<()> {
//! // Created (and migrated) when missing; `postgres://user@host/db` works the same way.
//! let store = SqlStore::open("sqlite:/var/lib/saga/events.db", 4).await?;
//! let in_flight = store.with_status(&["running", "compensating"]).await?;
//! # Ok(()) }
//! ```

use super::rows::{
    current_version, decode_event, decode_record, event_columns, get, parse_uuid, saga_columns_of,
    select_sagas, sql_int,
};
use super::writer::Writer;
use super::{
    Created, DefinitionStore, DefinitionUse, Error, EventLog, NewDefinition, NewEvent, NewSaga,
    Result, Retirement, SagaQuery, SagaRecord, Schedule, StoredDefinition, StoredEvent, Summary,
    definitions,
};
use saga_protocol::Timestamp;
use saga_sql::{self as db, Backend};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, AssertSqlSafe};
use uuid::Uuid;

mod archive;
mod projection;
mod read_model;
mod snapshots;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The event store on SQLite or PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Every create and append goes through it (group commit, see [`super::writer`]).
    writer: Writer,
}

impl SqlStore {
    /// Opens `sqlite:<path>` (created when missing) or `postgres://…` with at most
    /// `max_connections`, and applies the event store's migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        Self::open_with(url, max_connections, db::Durability::default()).await
    }

    /// [`SqlStore::open`] with what an acknowledged append survives.
    pub async fn open_with(
        url: &str,
        max_connections: u32,
        durability: db::Durability,
    ) -> Result<Self> {
        let (pool, backend) = db::connect(
            url,
            max_connections,
            durability,
            &SQLITE_MIGRATIONS,
            &POSTGRES_MIGRATIONS,
        )
        .await?;
        let writer = Writer::spawn(pool.clone());
        Ok(SqlStore {
            pool,
            backend,
            writer,
        })
    }

    /// Which database this store runs on.
    /// Closes the connections, waiting for them to finish; writes made before are committed.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The saga's record and its events after sequence `after`, up to the record's version.
    async fn load_from(
        &self,
        saga_id: Uuid,
        after: u64,
    ) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        let Some(row) = sqlx::query(select_sagas!("WHERE saga_id = $1"))
            .bind(saga_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Database)?
        else {
            return Ok(None);
        };
        let record = decode_record(&row)?;
        if record.version <= after {
            return Ok(Some((record, Vec::new())));
        }
        // Two reads without a transaction are still consistent: the record and the events up to
        // its version were committed together, and events are never changed, so bounding the
        // second read by `record.version` hides any append that committed in between. Events
        // are only ever deleted with their record, by the archive.
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM saga_events WHERE saga_id = $1 AND sequence > $2 AND sequence <= $3 \
             ORDER BY sequence"
        ))
        .bind(saga_id.to_string())
        .bind(sql_int(saga_id, after)?)
        .bind(sql_int(saga_id, record.version)?)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        let events = rows.iter().map(decode_event).collect::<Result<Vec<_>>>()?;
        let dense = events
            .iter()
            .zip(after + 1..)
            .all(|(event, sequence)| event.sequence == sequence);
        let whole = dense && events.len() as u64 == record.version - after;
        if !whole && current_version(&self.pool, saga_id).await?.is_none() {
            // Archived between the two reads: it is no longer in the hot tables.
            return Ok(None);
        }
        if !whole {
            return Err(Error::Corrupt(format!(
                "saga {saga_id}: read model is at version {} but the log holds {} events \
                 after {after} up to it, or has gaps",
                record.version,
                events.len()
            )));
        }
        Ok(Some((record, events)))
    }
}

impl EventLog for SqlStore {
    async fn create(
        &self,
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<Created> {
        self.writer
            .create(saga, events, summary.into(), recorded_at)
            .await
    }

    async fn append(
        &self,
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<u64> {
        if events.is_empty() {
            // Nothing to write: only tell the caller whether its view is still current.
            return match current_version(&self.pool, saga_id).await? {
                Some(current) if current == expected_version => Ok(expected_version),
                Some(_) => Err(Error::Conflict {
                    saga_id,
                    expected_version,
                }),
                None => Err(Error::NotFound(saga_id)),
            };
        }
        self.writer
            .append(
                saga_id,
                expected_version,
                events,
                summary.into(),
                recorded_at,
            )
            .await
    }

    async fn load(&self, saga_id: Uuid) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        self.load_from(saga_id, 0).await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        // Range scans of the unique indexes on position of the hot and the archived events
        // (migrations/*/0007 and 0009), in one statement so that both are read at one point:
        // a saga being archived meanwhile is seen in one table or the other, never in neither.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = sqlx::query(concat!(
            "SELECT * FROM (SELECT ",
            event_columns!(),
            " FROM saga_events WHERE position > $1 ORDER BY position LIMIT $2) AS hot \
             UNION ALL SELECT * FROM (SELECT ",
            event_columns!(),
            " FROM saga_archive_events WHERE position > $3 ORDER BY position LIMIT $4) AS cold \
             ORDER BY position LIMIT $5"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .bind(after)
        .bind(i64::from(limit))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        rows.iter().map(decode_event).collect()
    }

    async fn feed_head(&self) -> Result<u64> {
        let head: i64 = sqlx::query_scalar("SELECT head FROM saga_feed WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::Database)?;
        super::rows::to_u64(head, "feed head")
    }

    async fn release_key(&self, saga_id: Uuid) -> Result<()> {
        sqlx::query("UPDATE sagas SET idempotency_key = NULL WHERE saga_id = $1")
            .bind(saga_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(Error::Database)?;
        Ok(())
    }
}

impl SqlStore {
    /// The sagas with one of `statuses`, updated before `updated_before` if given, oldest
    /// first.
    async fn by_status(
        &self,
        statuses: &[&str],
        updated_before: Option<Timestamp>,
    ) -> Result<Vec<Uuid>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = db::placeholders(1, statuses.len());
        let quiet = match updated_before {
            Some(_) => format!(" AND updated_at < ${}", statuses.len() + 1),
            None => String::new(),
        };
        // Only generated placeholders are spliced in; the values themselves are bound.
        let sql = format!(
            "SELECT saga_id FROM sagas WHERE status IN ({placeholders}){quiet} \
             ORDER BY created_at, saga_id"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for status in statuses {
            query = query.bind(*status);
        }
        if let Some(before) = updated_before {
            query = query.bind(before.millis());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(Error::Database)?;
        rows.iter()
            .map(|row| parse_uuid(&get::<String>(row, "saga_id")?))
            .collect()
    }
}

impl Schedule for SqlStore {
    async fn with_status(&self, statuses: &[&str]) -> Result<Vec<Uuid>> {
        self.by_status(statuses, None).await
    }

    async fn quiet(&self, statuses: &[&str], updated_before: Timestamp) -> Result<Vec<Uuid>> {
        self.by_status(statuses, Some(updated_before)).await
    }

    async fn due(&self, until: Timestamp, limit: u32) -> Result<Vec<(Uuid, Timestamp)>> {
        // On the partial index of due_at (migrations/*/0003_saga_due_at.sql).
        let rows = sqlx::query(
            "SELECT saga_id, due_at FROM sagas WHERE due_at IS NOT NULL AND due_at <= $1 \
             ORDER BY due_at, saga_id LIMIT $2",
        )
        .bind(until.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Database)?;
        rows.iter()
            .map(|row| {
                let id = parse_uuid(&get::<String>(row, "saga_id")?)?;
                Ok((id, Timestamp(get(row, "due_at")?)))
            })
            .collect()
    }
}

impl DefinitionStore for SqlStore {
    async fn put_definition(&self, definition: NewDefinition) -> Result<StoredDefinition> {
        definitions::put(&self.pool, definition).await
    }

    async fn definition(&self, name: &str, version: u32) -> Result<Option<StoredDefinition>> {
        definitions::get(&self.pool, name, version).await
    }

    async fn definitions(&self, in_flight: &[&str]) -> Result<Vec<DefinitionUse>> {
        definitions::list(&self.pool, in_flight).await
    }

    async fn retire_definition(
        &self,
        name: &str,
        version: u32,
        in_flight: &[&str],
        at: Timestamp,
    ) -> Result<Retirement> {
        definitions::retire(&self.pool, name, version, in_flight, at).await
    }
}

/// A value bound to a generated placeholder.
pub(super) enum Bind {
    Text(String),
    Int(i64),
}

/// `WHERE … ORDER BY … LIMIT` of a search, with its binds. Only placeholders and fixed column
/// names are spliced into the SQL; every value is bound.
pub(super) fn search_sql(q: &SagaQuery) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut clauses = Vec::new();
    let mut bind = |value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    // With a tag, the tag index drives the scan and its created_at orders the page; otherwise
    // the read model's own (status|name|…, created_at) indexes do.
    let (from, order) = match &q.tag {
        Some((key, value)) => {
            let key = bind(Bind::Text(key.clone()));
            let value = bind(Bind::Text(value.clone()));
            clauses.push(format!("t.key = {key} AND t.value = {value}"));
            (
                "FROM saga_tags t JOIN sagas s ON s.saga_id = t.saga_id",
                ("t.created_at", "t.saga_id"),
            )
        }
        None => ("FROM sagas s", ("s.created_at", "s.saga_id")),
    };
    if !q.statuses.is_empty() {
        let list: Vec<String> = q
            .statuses
            .iter()
            .map(|status| bind(Bind::Text(status.clone())))
            .collect();
        clauses.push(format!("s.status IN ({})", list.join(", ")));
    }
    if let Some(name) = &q.name {
        clauses.push(format!("s.name = {}", bind(Bind::Text(name.clone()))));
    }
    if let Some(version) = q.definition_version {
        clauses.push(format!(
            "s.definition_version = {}",
            bind(Bind::Int(i64::from(version)))
        ));
    }
    if let Some(before) = q.overdue_before {
        clauses.push(format!(
            "COALESCE(s.deadline_at, s.created_at) < {}",
            bind(Bind::Int(before.millis()))
        ));
    }
    let (created_at, saga_id) = order;
    if let Some(from) = q.created_from {
        clauses.push(format!(
            "{created_at} >= {}",
            bind(Bind::Int(from.millis()))
        ));
    }
    if let Some(until) = q.created_until {
        clauses.push(format!(
            "{created_at} < {}",
            bind(Bind::Int(until.millis()))
        ));
    }
    if let Some(cursor) = q.after {
        let bound = bind(Bind::Int(cursor.created_at.millis()));
        let at = bind(Bind::Int(cursor.created_at.millis()));
        let at_again = bind(Bind::Int(cursor.created_at.millis()));
        let id = bind(Bind::Text(cursor.saga_id.to_string()));
        // The first, redundant bound is what lets the planner range-scan the created_at
        // index: an OR alone makes it scan everything (0.2 s a page at a million sagas).
        clauses.push(format!(
            "{created_at} <= {bound} AND ({created_at} < {at} OR ({created_at} = {at_again} AND {saga_id} < {id}))"
        ));
    }
    let limit = bind(Bind::Int(i64::from(q.limit)));
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let columns = saga_columns_of("s");
    let sql = format!(
        "SELECT {columns} {from} {filter} \
         ORDER BY {created_at} DESC, {saga_id} DESC LIMIT {limit}"
    );
    (sql, binds)
}
