//! The stored definitions of the in-memory store.

use super::MemoryStore;
use crate::store::{
    DefinitionStore, DefinitionUse, NewDefinition, Result, Retirement, StoredDefinition,
};
use saga_protocol::Timestamp;

impl DefinitionStore for MemoryStore {
    async fn put_definition(&self, d: NewDefinition) -> Result<StoredDefinition> {
        let mut inner = self.lock();
        let stored = inner
            .definitions
            .entry((d.name.clone(), d.version))
            .or_insert_with(|| StoredDefinition {
                name: d.name,
                version: d.version,
                hash: d.hash,
                source: d.source,
                stored_at: d.stored_at,
                retired_at: None,
            });
        Ok(stored.clone())
    }

    async fn definition(&self, name: &str, version: u32) -> Result<Option<StoredDefinition>> {
        let inner = self.lock();
        Ok(inner.definitions.get(&(name.to_string(), version)).cloned())
    }

    async fn definitions(&self, in_flight: &[&str]) -> Result<Vec<DefinitionUse>> {
        let inner = self.lock();
        Ok(inner
            .definitions
            .values()
            .map(|d| DefinitionUse {
                definition: d.clone(),
                in_flight: inner.count(&d.name, d.version, in_flight),
            })
            .collect())
    }

    async fn retire_definition(
        &self,
        name: &str,
        version: u32,
        in_flight: &[&str],
        at: Timestamp,
    ) -> Result<Retirement> {
        let mut inner = self.lock();
        let n = inner.count(name, version, in_flight);
        let Some(stored) = inner.definitions.get_mut(&(name.to_string(), version)) else {
            return Ok(Retirement::Unknown);
        };
        if n > 0 {
            return Ok(Retirement::InFlight(n));
        }
        stored.retired_at.get_or_insert(at);
        Ok(Retirement::Retired(stored.clone()))
    }
}
