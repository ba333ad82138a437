//! The archive of the in-memory store.

use super::MemoryStore;
use crate::store::{Archive, Archived, Result, Retire};
use saga_protocol::Timestamp;
use uuid::Uuid;

impl Archive for MemoryStore {
    async fn archive(&self, retire: &Retire<'_>, at: Timestamp) -> Result<Vec<Uuid>> {
        let mut inner = self.lock();
        let mut chosen: Vec<(Timestamp, Uuid)> = inner
            .sagas
            .values()
            .map(|saga| &saga.record)
            .filter(|r| retire.statuses.contains(&r.status.as_str()))
            .filter(|r| r.updated_at < retire.ended_before && r.created_at < retire.created_before)
            .map(|r| (r.created_at, r.saga_id))
            .collect();
        chosen.sort();
        chosen.truncate(usize::try_from(retire.limit).unwrap_or(usize::MAX));
        let mut moved = Vec::with_capacity(chosen.len());
        for (_, id) in chosen {
            let Some(saga) = inner.sagas.remove(&id) else {
                continue;
            };
            if let Some(key) = &saga.record.idempotency_key {
                inner.keys.remove(&(saga.record.name.clone(), key.clone()));
            }
            inner.snapshots.remove(&id);
            let archived = Archived {
                record: saga.record,
                tags: saga.tags,
                events: saga.events,
                archived_at: at,
            };
            inner.archived.insert(id, archived);
            moved.push(id);
        }
        Ok(moved)
    }

    async fn archived(&self, saga_id: Uuid) -> Result<Option<Archived>> {
        Ok(self.lock().archived.get(&saga_id).cloned())
    }

    async fn archived_count(&self) -> Result<u64> {
        Ok(self.lock().archived.len() as u64)
    }
}
