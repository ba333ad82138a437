//! The read model of the in-memory store as a projection of its log.

use super::{MemoryStore, Saga};
use crate::store::{Error, Projected, Projection, Result, SagaRow};
use uuid::Uuid;

impl Projection for MemoryStore {
    async fn saga_ids(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Uuid>> {
        let inner = self.lock();
        let mut ids: Vec<Uuid> = inner
            .sagas
            .keys()
            .copied()
            .filter(|id| after.is_none_or(|after| *id > after))
            .collect();
        ids.sort();
        ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(ids)
    }

    async fn projected(&self, saga_id: Uuid) -> Result<Projected> {
        let inner = self.lock();
        Ok(match inner.sagas.get(&saga_id) {
            Some(saga) => {
                let mut tags = saga.tags.clone();
                tags.sort();
                Projected {
                    events: saga.events.clone(),
                    row: Some(SagaRow {
                        record: saga.record.clone(),
                        due_at: saga.due_at,
                        tags,
                    }),
                }
            }
            None => Projected {
                events: Vec::new(),
                row: None,
            },
        })
    }

    async fn reproject(
        &self,
        saga_id: Uuid,
        log_version: u64,
        row: Option<SagaRow>,
    ) -> Result<bool> {
        let mut inner = self.lock();
        let logged = inner
            .sagas
            .get(&saga_id)
            .map_or(0, |saga| saga.events.len() as u64);
        if logged != log_version {
            return Ok(false);
        }
        let Some(mut row) = row else {
            if logged > 0 {
                return Err(Error::Corrupt(format!(
                    "saga {saga_id}: the memory store keeps a saga's rows with its log"
                )));
            }
            if let Some(saga) = inner.sagas.remove(&saga_id)
                && let Some(key) = saga.record.idempotency_key
            {
                inner.keys.remove(&(saga.record.name, key));
            }
            return Ok(true);
        };
        match inner.sagas.get_mut(&saga_id) {
            Some(saga) => {
                row.record.idempotency_key = saga.record.idempotency_key.clone();
                saga.record = row.record;
                saga.due_at = row.due_at;
                saga.tags = row.tags;
            }
            None => {
                if let Some(key) = &row.record.idempotency_key {
                    let scoped = (row.record.name.clone(), key.clone());
                    inner.keys.insert(scoped, saga_id);
                }
                let saga = Saga {
                    record: row.record,
                    events: Vec::new(),
                    tags: row.tags,
                    due_at: row.due_at,
                };
                inner.sagas.insert(saga_id, saga);
            }
        }
        Ok(true)
    }
}
