//! Snapshots of sagas' states, next to their logs: a cache a load may start from instead of
//! folding the whole log (see `saga_core::snapshot`). Dropping them changes nothing but speed.

use super::{Result, SagaRecord, StoredEvent};
use saga_protocol::Timestamp;
use std::future::Future;
use uuid::Uuid;

/// A saga's state as folded from its events 1..=`version`, as the runtime encoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub saga_id: Uuid,
    /// The sequence of the last event folded into it.
    pub version: u64,
    /// The shape of `state` (`saga_core::snapshot::SNAPSHOT_SCHEMA` when it was taken).
    pub schema_version: u32,
    /// The content hash of the definition the saga runs, as the state recorded it.
    pub definition_hash: Option<String>,
    /// Opaque to the store.
    pub state: serde_json::Value,
    pub taken_at: Timestamp,
}

/// Where sagas' snapshots are kept.
pub trait Snapshots: Clone + Send + Sync + 'static {
    /// Keeps `snapshot` as its saga's, unless the saga has one of a later version already.
    fn put_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<()>> + Send;

    /// The saga's snapshot, if it has one.
    fn snapshot(&self, saga_id: Uuid) -> impl Future<Output = Result<Option<Snapshot>>> + Send;

    /// The saga's record and its events after sequence `after` (up to the record's version),
    /// as [`EventLog::load`](super::EventLog::load) reads all of them; `None` if unknown.
    fn load_after(
        &self,
        saga_id: Uuid,
        after: u64,
    ) -> impl Future<Output = Result<Option<(SagaRecord, Vec<StoredEvent>)>>> + Send;

    /// Drops every snapshot; returns how many there were.
    fn drop_snapshots(&self) -> impl Future<Output = Result<u64>> + Send;
}
