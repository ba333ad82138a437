//! The event store: the orchestrator's only source of truth.
//!
//! Every saga is an append-only stream of [`StoredEvent`]s numbered 1, 2, 3… (`sequence`). A
//! saga's state is the fold of its events; nothing else is authoritative. Next to the log the
//! store keeps one [`SagaRecord`] per saga (name, status, last sequence), written in the same
//! transaction as each append, so status queries never have to fold.
//!
//! Appends use optimistic concurrency: the caller passes the sequence of the last event it folded
//! (`expected_version`), and if another writer appended in between the append fails with
//! [`Error::Conflict`] and writes nothing. The runtime then reloads, folds again and decides
//! again. Two writers racing on one saga can never both win.
//!
//! The store is seven seams, which [`EventStore`] puts together: [`EventLog`] (create, append,
//! load, the feed), [`Schedule`] (the sagas in flight, the timers due), [`ReadModel`] (list,
//! search, counts), [`Projection`] (the read model checked against the log and rewritten from
//! it), [`Snapshots`] (a cache of folded states), [`Archive`] (finished sagas moved out of the
//! hot tables, still readable) and [`DefinitionStore`] (the definitions stored with their
//! sagas).
//!
//! Implementations, all held to the same contract by `tests/store_contract.rs`:
//! - [`SqlStore`]: SQLite (embedded default) or PostgreSQL (production, several replicas).
//! - [`MemoryStore`]: in process, for paused-clock tests.
//!
//! ```
//! use saga_orchestrator::store::{Created, Error, EventLog, MemoryStore, NewEvent, NewSaga, ReadModel};
//! use saga_protocol::Timestamp;
//! use uuid::Uuid;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> saga_orchestrator::store::Result<()> {
//! let store = MemoryStore::new();
//! let saga_id = Uuid::new_v4();
//! let event = |event_type: &str| NewEvent {
//!     event_type: event_type.into(),
//!     schema_version: 1,
//!     payload: serde_json::json!({ "order_id": 7 }),
//!     occurred_at: Timestamp(1_000),
//! };
//! let saga = NewSaga {
//!     saga_id,
//!     name: "order".into(),
//!     definition_version: 1,
//!     idempotency_key: None,
//!     input_digest: "sha256:0f1e".into(),
//!     tags: vec![("customer_id".into(), "c-7".into())],
//!     deadline_at: None,
//! };
//! let created = store.create(saga, vec![event("SagaStarted")], "running", Timestamp(1_000));
//! assert_eq!(created.await?, Created::New);
//!
//! // Append after version 1, the last event we folded.
//! let next = vec![event("StepRequested")];
//! assert_eq!(store.append(saga_id, 1, next.clone(), "running", Timestamp(1_001)).await?, 2);
//!
//! // A writer that still believes the saga is at version 1 loses.
//! let stale = store.append(saga_id, 1, next, "running", Timestamp(1_002)).await;
//! assert!(matches!(stale, Err(Error::Conflict { expected_version: 1, .. })));
//!
//! let (record, events) = store.load(saga_id).await?.ok_or(Error::NotFound(saga_id))?;
//! assert_eq!((record.version, events.len()), (2, 2));
//! # Ok(()) }
//! ```

mod archive;
mod definitions;
mod memory;
mod projection;
mod query;
mod rows;
mod snapshots;
mod sql;
mod writer;
mod writes;

pub use archive::{Archive, Archived, Retire};
pub use definitions::{DefinitionUse, NewDefinition, Retirement, StoredDefinition};
pub use memory::MemoryStore;
pub use projection::{Projected, Projection, SagaRow};
pub use query::{Cursor, MAX_TAG_LEN, SagaQuery, input_tags};
pub use snapshots::{Snapshot, Snapshots};
pub use sql::SqlStore;

use saga_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::future::Future;
use uuid::Uuid;

/// An event to append; the store assigns its sequence, positions and `recorded_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's tag (`StepCompleted`), stored forever: choose it once.
    pub event_type: String,
    /// The version of the payload's shape; old versions are read through upcasters.
    pub schema_version: u32,
    pub payload: serde_json::Value,
    /// When it happened, by the clock of whoever saw it happen (e.g. the participant).
    pub occurred_at: Timestamp,
}

/// An event as stored in a saga's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub saga_id: Uuid,
    /// Position in the saga's own log, 1-based and without gaps.
    pub sequence: u64,
    /// Position in the store-wide log. Increases with insertion order; may have gaps, and on
    /// PostgreSQL concurrent appends may commit out of this order, so it is not a feed cursor:
    /// `position` is.
    pub global_position: i64,
    /// Its place in the feed of every saga's events ([`EventLog::feed`]): 1, 2, 3… in commit
    /// order, without holes.
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    /// When it happened (the participant's clock).
    pub occurred_at: Timestamp,
    /// When the orchestrator recorded it (the orchestrator's clock).
    pub recorded_at: Timestamp,
}

impl StoredEvent {
    /// What the store knows of the row besides its payload, for the upcasters.
    pub fn stored(&self) -> saga_protocol::upcast::Stored {
        saga_protocol::upcast::Stored {
            recorded_at: self.recorded_at,
        }
    }
}

/// Read model row, updated in the same transaction as each append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    pub saga_id: Uuid,
    /// The saga definition's name (`sagas/<name>.toml`).
    pub name: String,
    pub definition_version: u32,
    /// As given by the last append; the store does not interpret it.
    pub status: String,
    /// The sequence of the saga's last event (0 for a saga created without events).
    pub version: u64,
    pub idempotency_key: Option<String>,
    /// Digest of the start input, to tell a retried start from a different one reusing a key.
    pub input_digest: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When its forward path must be done by (its definition's deadline), if it has one.
    pub deadline_at: Option<Timestamp>,
}

/// What a write says of the saga besides its events: the read model's status and timer.
///
/// A plain status converts into one with no timer (`"completed".into()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// As the runtime names it; the store does not interpret it.
    pub status: String,
    /// When the saga's earliest pending timer falls due (a step's timeout or retry, the
    /// saga's deadline); `None` when it has none. Indexed, so the replica that owns the saga
    /// finds the timers armed elsewhere ([`EventStore::due`]).
    pub due_at: Option<Timestamp>,
}

impl From<&str> for Summary {
    fn from(status: &str) -> Self {
        Summary {
            status: status.to_string(),
            due_at: None,
        }
    }
}

/// A saga to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSaga {
    pub saga_id: Uuid,
    pub name: String,
    pub definition_version: u32,
    pub idempotency_key: Option<String>,
    pub input_digest: String,
    /// Searchable `(field, value)` pairs, usually [`input_tags`] of the start input. Written
    /// once with the saga and never changed.
    pub tags: Vec<(String, String)>,
    /// When its forward path must be done by (from its `SagaStarted`), if its definition has
    /// a deadline. Written once with the saga.
    pub deadline_at: Option<Timestamp>,
}

/// What [`EventStore::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The saga and its events were written.
    New,
    /// A saga with this idempotency key already exists; nothing was written. The caller compares
    /// `input_digest`: the same input is a retried start (answer with this saga), a different one
    /// is a misuse of the key (409).
    Existing(SagaRecord),
}

/// The event log: a saga's events, appended with optimistic concurrency on its version,
/// and read back whole.
///
/// Every method of the store's traits is a single round of database work and holds no state
/// between calls, so a future dropped mid-way (e.g. in `select!`) leaves either the whole
/// write or nothing.
pub trait EventLog: Clone + Send + Sync + 'static {
    /// Creates a saga with its first events (sequences 1..=n) and status, atomically.
    ///
    /// With an idempotency key that is already used, creates nothing and returns
    /// [`Created::Existing`] with the record of the saga that has it. If `saga.saga_id` itself
    /// already exists (and the key does not match), returns [`Error::Conflict`] with
    /// `expected_version: 0`: someone else created that saga first.
    fn create(
        &self,
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> impl Future<Output = Result<Created>> + Send;

    /// Appends events after `expected_version` (the sequence of the last event the caller
    /// folded) and sets the saga's status and timer, in one transaction. Returns the new
    /// version.
    ///
    /// If another writer appended first, returns [`Error::Conflict`] and writes nothing; an
    /// unknown saga is [`Error::NotFound`]. An empty `events` writes nothing: it only checks
    /// `expected_version` and returns it.
    fn append(
        &self,
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The saga's record and all its events in sequence order (the events are exactly those up
    /// to `record.version`); `None` if unknown or archived ([`Archive::archived`] reads those).
    fn load(
        &self,
        saga_id: Uuid,
    ) -> impl Future<Output = Result<Option<(SagaRecord, Vec<StoredEvent>)>>> + Send;

    /// Every saga's events after feed position `after`, in position order, at most `limit`,
    /// archived sagas' included.
    ///
    /// Positions are handed out in commit order and without holes, so a reader that has read
    /// up to position p has missed nothing below it, whatever appends are in flight, and
    /// reading on from p sees nothing twice.
    fn feed(&self, after: u64, limit: u32)
    -> impl Future<Output = Result<Vec<StoredEvent>>> + Send;

    /// The position of the last event committed (0 when there is none): where a subscriber
    /// that wants only what comes next starts reading.
    fn feed_head(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Frees the idempotency key of saga `saga_id` (its window has passed): a start of the
    /// same saga name with that key creates a new saga. The saga itself is unchanged; its
    /// record shows no key any more. A saga without a key, or unknown, is left as it is.
    fn release_key(&self, saga_id: Uuid) -> impl Future<Output = Result<()>> + Send;
}

/// What the runtime must act on without being asked: the sagas still in flight and the
/// timers that fall due (the read model's `status` and `due_at`, written with each append).
pub trait Schedule: Clone + Send + Sync + 'static {
    /// Ids of sagas whose status is one of `statuses` (the runtime passes the non-terminal
    /// ones), oldest first (by `created_at`, then id).
    fn with_status(&self, statuses: &[&str]) -> impl Future<Output = Result<Vec<Uuid>>> + Send;

    /// Like [`Schedule::with_status`], only the sagas whose last append was recorded before
    /// `updated_before`: those gone quiet, which the recovery sweep republishes.
    fn quiet(
        &self,
        statuses: &[&str],
        updated_before: Timestamp,
    ) -> impl Future<Output = Result<Vec<Uuid>>> + Send;

    /// Sagas whose timer ([`Summary::due_at`]) falls due at or before `until`, earliest first,
    /// at most `limit`, with when it does.
    fn due(
        &self,
        until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(Uuid, Timestamp)>>> + Send;
}

/// The read model: one row per saga, updated in the same transaction as each append, for
/// lists, searches and counts that never read the event log.
pub trait ReadModel: Clone + Send + Sync + 'static {
    /// Read-model records, newest first (by `created_at`, then id), at most `limit`.
    fn list(&self, limit: u32) -> impl Future<Output = Result<Vec<SagaRecord>>> + Send;

    /// Read-model records matching `query`, newest first, at most `query.limit`. Runs on the
    /// read model's indexes, never on the event log.
    fn search(&self, query: &SagaQuery) -> impl Future<Output = Result<Vec<SagaRecord>>> + Send;

    /// How many sagas have each status, by status name (statuses with none are absent).
    fn status_counts(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, u64>>> + Send;

    /// How many sagas were created in each of `buckets` consecutive spans of `bucket` from
    /// `since` (the first span starts at `since`), counted by the store, however many there
    /// are. Sagas created outside the spans are not counted.
    fn started_per_bucket(
        &self,
        since: Timestamp,
        bucket: std::time::Duration,
        buckets: usize,
    ) -> impl Future<Output = Result<Vec<u64>>> + Send;

    /// How many sagas with one of `statuses` have their deadline (or, without one, their
    /// start) before `before`: with the active statuses, how many are overdue.
    fn count_overdue(
        &self,
        statuses: &[&str],
        before: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// The definitions stored with the sagas that run them.
pub trait DefinitionStore: Clone + Send + Sync + 'static {
    /// Stores a definition version unless its (name, version) is stored already, and returns
    /// the row as stored: the new one, or the one that was there, whatever its content (the
    /// caller compares hashes; a stored row never changes).
    fn put_definition(
        &self,
        definition: NewDefinition,
    ) -> impl Future<Output = Result<StoredDefinition>> + Send;

    /// The stored definition `name` version `version`, if any.
    fn definition(
        &self,
        name: &str,
        version: u32,
    ) -> impl Future<Output = Result<Option<StoredDefinition>>> + Send;

    /// Every stored definition version, by name then version, each with how many of its
    /// sagas have one of the statuses `in_flight` (counted on the read model).
    fn definitions(
        &self,
        in_flight: &[&str],
    ) -> impl Future<Output = Result<Vec<DefinitionUse>>> + Send;

    /// Retires a stored definition version at `at`, unless a saga of it has one of the
    /// statuses `in_flight`: then nothing changes. Retiring a retired version keeps its
    /// first `retired_at`.
    fn retire_definition(
        &self,
        name: &str,
        version: u32,
        in_flight: &[&str],
        at: Timestamp,
    ) -> impl Future<Output = Result<Retirement>> + Send;
}

/// Everything the runtime needs of its store: the log, the schedule, the read model (and its
/// rewriting from the log), the snapshots, the archive and the stored definitions, each a seam
/// of its own.
pub trait EventStore:
    EventLog + Schedule + ReadModel + Projection + Snapshots + Archive + DefinitionStore
{
}

impl<T> EventStore for T where
    T: EventLog + Schedule + ReadModel + Projection + Snapshots + Archive + DefinitionStore
{
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another writer appended to (or created) the saga first. Reload, fold and decide again.
    #[error("saga {saga_id} was changed by another writer after version {expected_version}")]
    Conflict {
        saga_id: Uuid,
        expected_version: u64,
    },
    #[error("saga {0} does not exist")]
    NotFound(Uuid),
    /// A stored row that cannot be decoded (bad uuid, bad JSON, out-of-range number), or a log
    /// that disagrees with its read model. Not transient: someone must look at the data.
    #[error("corrupt event store data: {0}")]
    Corrupt(String),
    #[error("event store database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("cannot open the event store: {0}")]
    Open(#[from] saga_sql::Error),
}

impl Error {
    /// Whether the same call may succeed if retried later: the database was unreachable, the
    /// pool was exhausted, or it refused the transaction for load reasons (busy, deadlock).
    /// A conflict is not transient: retrying the same append can never succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => saga_sql::is_transient(e),
            Error::Open(e) => e.is_transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_is_not_transient_and_io_is() {
        let conflict = Error::Conflict {
            saga_id: Uuid::nil(),
            expected_version: 3,
        };
        assert!(!conflict.is_transient());
        let io = Error::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(io.is_transient());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::Corrupt("x".into()).is_transient());
    }
}
