//! The read model as a projection of the log: what `saga projections verify` reads and
//! `saga projections rebuild` writes.
//!
//! The `sagas` row (status, version, times, timer) and the `saga_tags` rows of a saga are
//! written with each append, and must always equal what the fold of its log says. This seam
//! reads both sides of one saga ([`Projection::projected`]) and replaces the rows with what
//! the fold says ([`Projection::reproject`]), atomically against the appends of a running
//! system: a rewrite made from a log that has moved on in between is refused, not written.

use super::{Result, SagaRecord, StoredEvent};
use saga_protocol::Timestamp;
use std::future::Future;
use uuid::Uuid;

/// A saga's rows in the read model: its `sagas` row, its timer and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRow {
    pub record: SagaRecord,
    /// The `due_at` column: when its earliest timer falls due.
    pub due_at: Option<Timestamp>,
    /// The `saga_tags` rows, sorted.
    pub tags: Vec<(String, String)>,
}

/// One saga as stored: its whole log and its read-model rows, if it has any.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    /// Every event of the saga, in sequence order.
    pub events: Vec<StoredEvent>,
    pub row: Option<SagaRow>,
}

/// Reads and rewrites the read model of one saga at a time, next to its log.
pub trait Projection: Clone + Send + Sync + 'static {
    /// Ids of the sagas that have a log or a read-model row, in id order (the uuid's bytes),
    /// those after `after` only, at most `limit`.
    fn saga_ids(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Uuid>>> + Send;

    /// The saga's log and rows, read so that they agree unless the read model is wrong: an
    /// append committed between the two reads is in both or in neither.
    fn projected(&self, saga_id: Uuid) -> impl Future<Output = Result<Projected>> + Send;

    /// Replaces the saga's rows with `row` (`None` removes them) if its log still ends at
    /// sequence `log_version` (0: no events), and returns whether it did. The idempotency key
    /// is the store's, not the log's: a row that exists keeps its key, a row written anew
    /// takes `row`'s. Appends wait for the rewrite, or it for them; none is lost.
    fn reproject(
        &self,
        saga_id: Uuid,
        log_version: u64,
        row: Option<SagaRow>,
    ) -> impl Future<Output = Result<bool>> + Send;
}
