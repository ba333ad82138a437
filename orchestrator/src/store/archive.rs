//! The archive: finished sagas moved out of the hot tables once their retention window has
//! passed, whole, and still readable (`saga history`, the API, the feed).
//!
//! Only sagas whose status is final (completed, compensated, aborted: not even an operator
//! can move them) are moved, so nothing the runtime acts on is ever touched. The runtime's
//! sweep ([`crate::runtime::retention`]) decides which are old enough.

use super::{Result, SagaRecord, StoredEvent};
use saga_protocol::Timestamp;
use std::future::Future;
use uuid::Uuid;

/// A saga as it was archived: what the hot tables held of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub record: SagaRecord,
    /// Its searchable `(field, value)` pairs, as they were written at its start.
    pub tags: Vec<(String, String)>,
    /// Its whole log, every event as stored (sequence, positions, payload, times).
    pub events: Vec<StoredEvent>,
    /// When it was moved.
    pub archived_at: Timestamp,
}

/// Which sagas a sweep of the archive moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retire<'a> {
    /// Statuses that may be moved (the runtime passes the final ones).
    pub statuses: &'a [&'a str],
    /// Only sagas whose last event was recorded before this.
    pub ended_before: Timestamp,
    /// Only sagas created before this (so no idempotency key still in its window is lost).
    pub created_before: Timestamp,
    /// At most this many, oldest first (by `created_at`, then id).
    pub limit: u32,
}

/// Where finished sagas go when they leave the hot tables.
pub trait Archive: Clone + Send + Sync + 'static {
    /// Moves the sagas `retire` selects to the archive at `at`, each whole in the same
    /// transaction (record, tags, events; its snapshot is dropped), and returns their ids.
    /// A saga appended to while the sweep runs no longer qualifies and stays. Afterwards
    /// [`load`](super::EventLog::load) knows them no more, and neither do the read model and
    /// the schedule; [`archived`](Archive::archived) and the [feed](super::EventLog::feed) do.
    fn archive(
        &self,
        retire: &Retire<'_>,
        at: Timestamp,
    ) -> impl Future<Output = Result<Vec<Uuid>>> + Send;

    /// The archived saga `saga_id`, if it was archived.
    fn archived(&self, saga_id: Uuid) -> impl Future<Output = Result<Option<Archived>>> + Send;

    /// How many sagas are archived.
    fn archived_count(&self) -> impl Future<Output = Result<u64>> + Send;
}
