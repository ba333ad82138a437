//! Definitions stored with the sagas: every version loaded is kept in the event store with its
//! source and content hash, and a saga whose version no file holds any more runs on the stored
//! one, after any restart.
//!
//! - At start-up ([`Orchestrator::record_definitions`]) and on reload, each version loaded from
//!   a file is compared with the store: a new one is stored; one stored with the same content
//!   is fine; one stored with *other* content is refused with a diagnostic at its `version`
//!   key, because a (name, version) never changes meaning — the file must bump the version.
//!   Nothing is written unless every version passes.
//! - When a saga's version is not loaded, [`Orchestrator::handle`] restores it from the store
//!   and caches it in the registry; new sagas still start only on versions loaded from files.
//! - A version with no saga in flight can be retired ([`Orchestrator::retire`]): it cannot be
//!   started any more, and its row stays, so its sagas' history stays readable.
//!
//! ```no_run
//! # async fn demo(o: saga_orchestrator::runtime::Orchestrator) -> saga_orchestrator::runtime::Result<()> {
//! for d in o.definition_list().await? {
//!     println!("{} v{} {} loaded={} in flight={}", d.name, d.version, d.hash, d.loaded, d.in_flight);
//! }
//! o.retire("place_order", 1).await?;
//! # Ok(()) }
//! ```

use super::registry::Entry;
use super::{Declined, Error, Orchestrator, Registry, Result};
use crate::store::{EventStore, NewDefinition, Retirement, StoredDefinition};
use crate::transport::Transport;
use saga_core::{Definition, DefinitionError, Errors, Status};
use saga_protocol::Timestamp;
use std::collections::{BTreeMap, HashMap};

/// The statuses of sagas that still need their definition: a stuck saga can be retried.
pub const IN_FLIGHT: [&str; 3] = [
    Status::Running.as_str(),
    Status::Compensating.as_str(),
    Status::Stuck.as_str(),
];

/// Why definitions could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file is invalid, or reuses a stored (name, version) for other content.
    #[error("invalid saga definitions:\n{0}")]
    Invalid(Errors),
    #[error(transparent)]
    Store(#[from] Error),
}

impl LoadError {
    /// Whether trying again later may succeed: the store was briefly unreachable. An invalid
    /// or changed definition stays so.
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Store(e) if e.is_transient())
    }
}

impl From<crate::store::Error> for LoadError {
    fn from(e: crate::store::Error) -> Self {
        LoadError::Store(e.into())
    }
}

/// A definition version as `GET /v1/definitions` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionInfo {
    pub name: String,
    pub version: u32,
    pub hash: String,
    pub description: String,
    pub steps: Vec<String>,
    /// Whether a file of it is loaded (new sagas may start on it unless it is retired).
    pub loaded: bool,
    /// Its sagas that are running, compensating or stuck.
    pub in_flight: u64,
    /// `None` for a loaded version not stored yet (it is stored at its first start).
    pub stored_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Stores the loaded versions the store lacks, and fails if any is stored with other
    /// content. [`Orchestrator::open`] does this before anything runs.
    pub async fn record_definitions(&self) -> Result<(), LoadError> {
        let mut recorded = self.record(self.registry()).await?;
        let mut guard = self.registry_mut();
        // The loaded versions now carry their stored hashes; restored ones stay as they are.
        for restored in guard.entries().filter(|e| e.file.is_none()) {
            recorded = recorded.with_restored(restored.clone());
        }
        *guard = recorded;
        Ok(())
    }

    /// Loads the definitions directory again and adds its new versions (stored first).
    /// Running sagas keep their versions; an invalid directory, or a file that changes a
    /// stored version, changes nothing and says why.
    pub async fn reload(&self) -> Result<Registry, LoadError> {
        let newer = Registry::load_dir(&self.options.sagas_dir).map_err(LoadError::Invalid)?;
        let newer = self.record(newer).await?;
        let mut guard = self.registry_mut();
        let merged = guard.merge(newer).map_err(LoadError::Invalid)?;
        *guard = merged.clone();
        Ok(merged)
    }

    /// Checks every version of `registry` loaded from a file against the store, then stores
    /// the new ones; returns `registry` with the stored hashes.
    async fn record(&self, registry: Registry) -> Result<Registry, LoadError> {
        let mut errors = Vec::new();
        let mut hashes = HashMap::new();
        let mut missing = Vec::new();
        let files = registry.entries().filter(|e| e.file.is_some());
        // First only compare, so that one bad file leaves the store as it was.
        for entry in files {
            let def = &entry.definition;
            match self.store.definition(&def.name, def.version).await? {
                Some(stored) => match same_content(entry, &stored) {
                    Ok(()) => {
                        hashes.insert((def.name.clone(), def.version), stored.hash);
                    }
                    Err(e) => errors.push(e),
                },
                None => missing.push(entry),
            }
        }
        if !errors.is_empty() {
            return Err(LoadError::Invalid(Errors(errors)));
        }
        // Another replica may store one of these in between: its row is kept and compared.
        for entry in missing {
            let def = &entry.definition;
            let stored = self
                .store
                .put_definition(new_definition(entry, self.now()))
                .await?;
            match same_content(entry, &stored) {
                Ok(()) => {
                    hashes.insert((def.name.clone(), def.version), stored.hash);
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(LoadError::Invalid(Errors(errors)));
        }
        let key = |e: &Entry| (e.definition.name.clone(), e.definition.version);
        Ok(registry.with_hashes(|e| hashes.get(&key(e)).cloned()))
    }

    /// The registry with version `version` of `name` in it, restored from the store when it
    /// is not loaded; `None` when the store does not have it either.
    pub(super) async fn registry_for(&self, name: &str, version: u32) -> Result<Option<Registry>> {
        let registry = self.registry();
        if registry.get(name, version).is_some() {
            return Ok(Some(registry));
        }
        let Some(stored) = self.store.definition(name, version).await? else {
            return Ok(None);
        };
        let entry = restore(stored)?;
        tracing::info!(
            saga = name,
            version,
            hash = %entry.definition.hash,
            "definition restored from the event store"
        );
        let mut guard = self.registry_mut();
        *guard = guard.with_restored(entry);
        Ok(Some(guard.clone()))
    }

    /// Whether `entry` may be started: stored with the same content (stored now if it is
    /// not, as when the orchestrator was built without [`Orchestrator::record_definitions`])
    /// and not retired. One read of the version's row, so a retirement by any replica holds
    /// at once.
    pub(super) async fn check_startable(&self, entry: &Entry) -> Result<()> {
        let def = &entry.definition;
        let stored = match self.store.definition(&def.name, def.version).await? {
            Some(stored) => stored,
            None => {
                self.store
                    .put_definition(new_definition(entry, self.now()))
                    .await?
            }
        };
        if stored.retired_at.is_some() {
            return Err(Declined::Retired {
                name: def.name.clone(),
                version: def.version,
            }
            .into());
        }
        same_content(entry, &stored).map_err(|e| Declined::DefinitionChanged(e).into())
    }

    /// Retires version `version` of `name`: it can no longer be started. Refused while any
    /// of its sagas is running, compensating or stuck.
    pub async fn retire(&self, name: &str, version: u32) -> Result<StoredDefinition> {
        let retired = self
            .store
            .retire_definition(name, version, &IN_FLIGHT, self.now())
            .await?;
        match retired {
            Retirement::Retired(stored) => {
                tracing::info!(saga = name, version, "definition retired");
                Ok(stored)
            }
            Retirement::InFlight(count) => Err(Declined::VersionInFlight {
                name: name.to_string(),
                version,
                count,
            }
            .into()),
            Retirement::Unknown => Err(Declined::UnknownVersion {
                name: name.to_string(),
                version,
            }
            .into()),
        }
    }

    /// Every stored version, and every loaded one not stored yet, by name then version.
    pub async fn definition_list(&self) -> Result<Vec<DefinitionInfo>> {
        let registry = self.registry();
        let mut list = BTreeMap::new();
        for used in self.store.definitions(&IN_FLIGHT).await? {
            let stored = used.definition;
            // A version no file holds: its description and steps are in its source.
            let parsed = match registry.get(&stored.name, stored.version) {
                Some(def) => Some(def.clone()),
                None => Definition::from_toml(&stored.name, &stored.source).ok(),
            };
            let info = DefinitionInfo {
                loaded: registry.startable(&stored.name, stored.version).is_some(),
                description: parsed
                    .as_ref()
                    .map(|d| d.description.clone())
                    .unwrap_or_default(),
                steps: parsed.as_ref().map(step_names).unwrap_or_default(),
                in_flight: used.in_flight,
                stored_at: Some(stored.stored_at),
                retired_at: stored.retired_at,
                hash: stored.hash,
                name: stored.name,
                version: stored.version,
            };
            list.insert((info.name.clone(), info.version), info);
        }
        for def in registry.definitions() {
            list.entry((def.name.clone(), def.version))
                .or_insert_with(|| DefinitionInfo {
                    name: def.name.clone(),
                    version: def.version,
                    hash: def.hash.clone(),
                    description: def.description.clone(),
                    steps: step_names(def),
                    loaded: true,
                    in_flight: 0,
                    stored_at: None,
                    retired_at: None,
                });
        }
        Ok(list.into_values().collect())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        // A registry is replaced whole, never left half-written: a poisoned lock is sound.
        match self.registry.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn step_names(def: &Definition) -> Vec<String> {
    def.steps.iter().map(|s| s.name.clone()).collect()
}

fn new_definition(entry: &Entry, stored_at: Timestamp) -> NewDefinition {
    NewDefinition {
        name: entry.definition.name.clone(),
        version: entry.definition.version,
        hash: entry.definition.hash.clone(),
        source: entry.source.to_string(),
        stored_at,
    }
}

/// Whether `entry` says what `stored` says, or else the diagnostic at its `version` key.
///
/// The hashes differ also when an older build hashed the same content otherwise (a field
/// added to the canonical form): then the stored source, validated by this build, hashes as
/// the file does, and the two are the same version.
fn same_content(entry: &Entry, stored: &StoredDefinition) -> Result<(), DefinitionError> {
    let def = &entry.definition;
    if stored.hash == def.hash {
        return Ok(());
    }
    if Definition::from_toml(&def.name, &stored.source).is_ok_and(|old| old.hash == def.hash) {
        return Ok(());
    }
    let file = entry.file.as_deref().unwrap_or(&def.name);
    Err(Definition::version_error(
        file,
        &entry.source,
        format!(
            "saga `{}` version {} differs from the stored version {} (stored {}, sha256 {}; \
             this file's is {}): a stored version never changes, so bump the version for the \
             new content",
            def.name,
            def.version,
            def.version,
            stored.stored_at,
            short(&stored.hash),
            short(&def.hash),
        ),
    ))
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// A stored version, validated again, as a registry entry that names its stored hash.
fn restore(stored: StoredDefinition) -> Result<Entry> {
    let label = format!("stored {} v{}", stored.name, stored.version);
    let bad = |reason: String| Error::BadStoredDefinition {
        name: stored.name.clone(),
        version: stored.version,
        reason,
    };
    let mut definition =
        Definition::from_toml(&label, &stored.source).map_err(|e| bad(e.to_string()))?;
    if (definition.name.as_str(), definition.version) != (stored.name.as_str(), stored.version) {
        return Err(bad(format!(
            "its source defines `{}` version {}",
            definition.name, definition.version
        )));
    }
    // The saga records the stored hash; keep naming the version by it.
    definition.hash = stored.hash;
    Ok(Entry {
        definition,
        source: stored.source.into(),
        file: None,
    })
}

impl From<LoadError> for super::OpenError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(errors) => super::OpenError::Definitions(errors),
            LoadError::Store(e) => super::OpenError::Store(e),
        }
    }
}
