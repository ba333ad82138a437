//! Sagas' snapshots in the in-memory store.

use super::MemoryStore;
use crate::store::{Result, SagaRecord, Snapshot, Snapshots, StoredEvent};
use uuid::Uuid;

impl Snapshots for MemoryStore {
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let mut inner = self.lock();
        let later = inner
            .snapshots
            .get(&snapshot.saga_id)
            .is_some_and(|kept| kept.version >= snapshot.version);
        if !later {
            inner.snapshots.insert(snapshot.saga_id, snapshot);
        }
        Ok(())
    }

    async fn snapshot(&self, saga_id: Uuid) -> Result<Option<Snapshot>> {
        Ok(self.lock().snapshots.get(&saga_id).cloned())
    }

    async fn load_after(
        &self,
        saga_id: Uuid,
        after: u64,
    ) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        let inner = self.lock();
        Ok(inner.sagas.get(&saga_id).map(|saga| {
            let tail = saga.events.iter().filter(|e| e.sequence > after);
            (saga.record.clone(), tail.cloned().collect())
        }))
    }

    async fn drop_snapshots(&self) -> Result<u64> {
        let mut inner = self.lock();
        let dropped = inner.snapshots.len() as u64;
        inner.snapshots.clear();
        Ok(dropped)
    }
}
