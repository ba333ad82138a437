//! [`EventStore`] in process memory, for tests that run on a paused tokio clock (a real
//! database does I/O the paused clock cannot account for) and for quick experiments.
//!
//! It keeps exactly the contract of [`SqlStore`](super::SqlStore), checked by the same suite
//! (`tests/store_contract.rs`): every call takes one lock, checks, then writes everything or
//! nothing, which is what a transaction gives the SQL store. Nothing survives the process.
//!
//! ```
//! use saga_orchestrator::store::{EventLog, MemoryStore, ReadModel};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> saga_orchestrator::store::Result<()> {
//! let store = MemoryStore::new();
//! let same = store.clone(); // clones share one log
//! assert!(same.list(10).await?.is_empty());
//! # Ok(()) }
//! ```

use super::{
    Created, Error, EventLog, NewEvent, NewSaga, ReadModel, Result, SagaQuery, SagaRecord,
    Schedule, StoredDefinition, StoredEvent, Summary,
};
use saga_protocol::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

mod archive;
mod definitions;
mod projection;
mod snapshots;

/// The event store in memory. Cheap to clone; clones share the same sagas.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    sagas: HashMap<Uuid, Saga>,
    /// idempotency key → saga id, the equivalent of the SQL unique index.
    /// Sagas by name and idempotency key.
    keys: HashMap<(String, String), Uuid>,
    /// The last global position handed out (positions start at 1, like the SQL sequences).
    last_position: i64,
    /// Stored definition versions by (name, version).
    definitions: BTreeMap<(String, u32), StoredDefinition>,
    /// Each saga's snapshot.
    snapshots: HashMap<Uuid, super::Snapshot>,
    /// Sagas moved out of `sagas` by the archive.
    archived: HashMap<Uuid, super::Archived>,
}

#[derive(Debug)]
struct Saga {
    record: SagaRecord,
    events: Vec<StoredEvent>,
    tags: Vec<(String, String)>,
    due_at: Option<Timestamp>,
}

impl Saga {
    fn matches(&self, q: &SagaQuery) -> bool {
        let r = &self.record;
        (q.statuses.is_empty() || q.statuses.contains(&r.status))
            && q.name.as_ref().is_none_or(|name| *name == r.name)
            && q.definition_version
                .is_none_or(|v| v == r.definition_version)
            && q.created_from.is_none_or(|from| r.created_at >= from)
            && q.created_until.is_none_or(|until| r.created_at < until)
            && q.tag.as_ref().is_none_or(|tag| self.tags.contains(tag))
            && q.after
                .is_none_or(|c| (r.created_at, r.saga_id) < (c.created_at, c.saga_id))
            && q.overdue_before
                .is_none_or(|before| r.deadline_at.unwrap_or(r.created_at) < before)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-done write: every method checks
        // all its preconditions before its first mutation. So a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Sagas of `name` version `version` whose status is one of `statuses`.
    fn count(&self, name: &str, version: u32, statuses: &[&str]) -> u64 {
        let n = self
            .sagas
            .values()
            .map(|saga| &saga.record)
            .filter(|r| r.name == name && r.definition_version == version)
            .filter(|r| statuses.contains(&r.status.as_str()))
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    fn stored(
        &mut self,
        saga_id: Uuid,
        after: u64,
        events: Vec<NewEvent>,
        recorded_at: Timestamp,
    ) -> Vec<StoredEvent> {
        events
            .into_iter()
            .zip(after + 1..)
            .map(|(event, sequence)| {
                self.last_position += 1;
                StoredEvent {
                    saga_id,
                    sequence,
                    global_position: self.last_position,
                    // One lock orders every write: insertion order is commit order.
                    position: self.last_position.unsigned_abs(),
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    occurred_at: event.occurred_at,
                    recorded_at,
                }
            })
            .collect()
    }
}

/// The version after appending `count` events to `after`, refusing what SQL could not store.
fn new_version(saga_id: Uuid, after: u64, count: usize) -> Result<u64> {
    u64::try_from(count)
        .ok()
        .and_then(|count| after.checked_add(count))
        .filter(|version| i64::try_from(*version).is_ok())
        .ok_or_else(|| Error::Corrupt(format!("saga {saga_id}: version overflow")))
}

impl EventLog for MemoryStore {
    async fn create(
        &self,
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<Created> {
        let summary = summary.into();
        let version = new_version(saga.saga_id, 0, events.len())?;
        let mut inner = self.lock();
        // Same precedence as the SQL store: a used key answers with its saga, then a used id
        // is a conflict.
        if let Some(existing) = saga
            .idempotency_key
            .as_ref()
            .and_then(|key| inner.keys.get(&(saga.name.clone(), key.clone())))
            .and_then(|id| inner.sagas.get(id))
        {
            return Ok(Created::Existing(existing.record.clone()));
        }
        if inner.sagas.contains_key(&saga.saga_id) {
            return Err(Error::Conflict {
                saga_id: saga.saga_id,
                expected_version: 0,
            });
        }
        let events = inner.stored(saga.saga_id, 0, events, recorded_at);
        if let Some(key) = &saga.idempotency_key {
            inner
                .keys
                .insert((saga.name.clone(), key.clone()), saga.saga_id);
        }
        let record = SagaRecord {
            saga_id: saga.saga_id,
            name: saga.name,
            definition_version: saga.definition_version,
            status: summary.status,
            version,
            idempotency_key: saga.idempotency_key,
            input_digest: saga.input_digest,
            created_at: recorded_at,
            updated_at: recorded_at,
            deadline_at: saga.deadline_at,
        };
        inner.sagas.insert(
            saga.saga_id,
            Saga {
                record,
                events,
                tags: saga.tags,
                due_at: summary.due_at,
            },
        );
        Ok(Created::New)
    }

    async fn append(
        &self,
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<u64> {
        let summary = summary.into();
        let version = new_version(saga_id, expected_version, events.len())?;
        let mut inner = self.lock();
        let current = inner
            .sagas
            .get(&saga_id)
            .ok_or(Error::NotFound(saga_id))?
            .record
            .version;
        if current != expected_version {
            return Err(Error::Conflict {
                saga_id,
                expected_version,
            });
        }
        if events.is_empty() {
            return Ok(expected_version);
        }
        let mut stored = inner.stored(saga_id, expected_version, events, recorded_at);
        let saga = inner
            .sagas
            .get_mut(&saga_id)
            .ok_or(Error::NotFound(saga_id))?;
        saga.events.append(&mut stored);
        saga.record.status = summary.status;
        saga.due_at = summary.due_at;
        saga.record.version = version;
        saga.record.updated_at = recorded_at;
        Ok(version)
    }

    async fn load(&self, saga_id: Uuid) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        let inner = self.lock();
        Ok(inner
            .sagas
            .get(&saga_id)
            .map(|saga| (saga.record.clone(), saga.events.clone())))
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        let inner = self.lock();
        let mut events: Vec<&StoredEvent> = inner
            .sagas
            .values()
            .flat_map(|saga| saga.events.iter())
            .chain(inner.archived.values().flat_map(|saga| saga.events.iter()))
            .filter(|event| event.position > after)
            .collect();
        events.sort_by_key(|event| event.position);
        Ok(events
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn feed_head(&self) -> Result<u64> {
        Ok(self.lock().last_position.unsigned_abs())
    }

    async fn release_key(&self, saga_id: Uuid) -> Result<()> {
        let mut inner = self.lock();
        let released = inner.sagas.get_mut(&saga_id).and_then(|saga| {
            let key = saga.record.idempotency_key.take()?;
            Some((saga.record.name.clone(), key))
        });
        if let Some(scoped) = released {
            inner.keys.remove(&scoped);
        }
        Ok(())
    }
}

impl MemoryStore {
    fn by_status(&self, statuses: &[&str], updated_before: Option<Timestamp>) -> Vec<Uuid> {
        let inner = self.lock();
        let mut matching: Vec<&SagaRecord> = inner
            .sagas
            .values()
            .map(|saga| &saga.record)
            .filter(|record| statuses.contains(&record.status.as_str()))
            .filter(|record| updated_before.is_none_or(|before| record.updated_at < before))
            .collect();
        // Same order as the SQL store's `ORDER BY created_at, saga_id` (uuid text order is the
        // byte order of the uuid).
        matching.sort_by_key(|record| (record.created_at, record.saga_id));
        matching.into_iter().map(|record| record.saga_id).collect()
    }
}

impl Schedule for MemoryStore {
    async fn with_status(&self, statuses: &[&str]) -> Result<Vec<Uuid>> {
        Ok(self.by_status(statuses, None))
    }

    async fn quiet(&self, statuses: &[&str], updated_before: Timestamp) -> Result<Vec<Uuid>> {
        Ok(self.by_status(statuses, Some(updated_before)))
    }

    async fn due(&self, until: Timestamp, limit: u32) -> Result<Vec<(Uuid, Timestamp)>> {
        let inner = self.lock();
        let mut due: Vec<(Timestamp, Uuid)> = inner
            .sagas
            .iter()
            .filter_map(|(id, saga)| saga.due_at.filter(|at| *at <= until).map(|at| (at, *id)))
            .collect();
        due.sort();
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(at, id)| (id, at))
            .collect())
    }
}

impl ReadModel for MemoryStore {
    async fn list(&self, limit: u32) -> Result<Vec<SagaRecord>> {
        let inner = self.lock();
        let mut records: Vec<&SagaRecord> = inner.sagas.values().map(|saga| &saga.record).collect();
        records.sort_by_key(|record| std::cmp::Reverse((record.created_at, record.saga_id)));
        Ok(records
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn search(&self, query: &SagaQuery) -> Result<Vec<SagaRecord>> {
        let inner = self.lock();
        let mut records: Vec<&SagaRecord> = inner
            .sagas
            .values()
            .filter(|saga| saga.matches(query))
            .map(|saga| &saga.record)
            .collect();
        records.sort_by_key(|record| std::cmp::Reverse((record.created_at, record.saga_id)));
        Ok(records
            .into_iter()
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn count_overdue(&self, statuses: &[&str], before: Timestamp) -> Result<u64> {
        if statuses.is_empty() {
            return Ok(0);
        }
        let query = SagaQuery {
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
            overdue_before: Some(before),
            ..SagaQuery::default()
        };
        let inner = self.lock();
        let overdue = inner.sagas.values().filter(|s| s.matches(&query)).count();
        Ok(overdue as u64)
    }

    async fn status_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let inner = self.lock();
        let mut counts = std::collections::BTreeMap::new();
        for saga in inner.sagas.values() {
            *counts.entry(saga.record.status.clone()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    async fn started_per_bucket(
        &self,
        since: Timestamp,
        bucket: std::time::Duration,
        buckets: usize,
    ) -> Result<Vec<u64>> {
        let width = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX).max(1);
        let inner = self.lock();
        let mut counts = vec![0; buckets];
        for saga in inner.sagas.values() {
            let offset = saga.record.created_at.millis() - since.millis();
            if offset < 0 {
                continue;
            }
            if let Some(count) = usize::try_from(offset / width)
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *count += 1;
            }
        }
        Ok(counts)
    }
}
