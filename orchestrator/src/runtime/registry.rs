//! The saga definitions this orchestrator runs, by name and version, loaded from
//! `sagas/*.toml` and checked against the participants catalogue (`sagas/participants.toml`).
//!
//! A saga always finishes on the definition version it started with, so reloading adds
//! versions and never drops one: a version that is already loaded cannot change (bump the
//! version instead), and one whose file is gone stays loaded for the sagas still running it.
//! Besides the files, the registry caches versions restored from the event store for sagas
//! that run on a version no file holds any more ([`Registry::with_restored`]); those run, but
//! new sagas start only on versions loaded from files.
//!
//! ```no_run
//! use saga_orchestrator::runtime::Registry;
//! let registry = Registry::load_dir(std::path::Path::new("sagas")).unwrap();
//! let newest = registry.latest("place_order").unwrap();
//! println!("place_order v{} ({})", newest.version, newest.hash);
//! ```

use saga_core::{Catalogue, Definition, DefinitionError, Errors};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Name of the catalogue file inside a definitions directory.
pub const CATALOGUE_FILE: &str = "participants.toml";

/// A loaded definition version with the text it was validated from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub definition: Definition,
    /// The TOML source, stored with the version.
    pub source: Arc<str>,
    /// The file it was loaded from; `None` when restored from the event store.
    pub file: Option<String>,
}

/// Validated definitions by name and version. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_name: Arc<BTreeMap<String, BTreeMap<u32, Entry>>>,
    catalogue: Option<Arc<Catalogue>>,
}

impl Registry {
    /// Loads every `*.toml` file of `dir` (the catalogue first, when there is one) and
    /// reports every problem of every file, not just the first.
    pub fn load_dir(dir: &Path) -> Result<Self, Errors> {
        let whole = |message: String| {
            Errors(vec![DefinitionError::whole_file(
                &dir.display().to_string(),
                message,
            )])
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| whole(format!("cannot read the definitions directory: {e}")))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let catalogue_path = dir.join(CATALOGUE_FILE);
        let catalogue = if catalogue_path.exists() {
            Some(Catalogue::from_file(&catalogue_path)?)
        } else {
            None
        };
        let mut errors = Vec::new();
        let mut by_name: BTreeMap<String, BTreeMap<u32, Entry>> = BTreeMap::new();
        for path in paths.into_iter().filter(|p| *p != catalogue_path) {
            let file = path.display().to_string();
            let source = match saga_core::definition::read_source(&path) {
                Ok(source) => source,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let definition = match Definition::parse(&file, &source, catalogue.as_ref()) {
                Ok(definition) => definition,
                Err(Errors(e)) => {
                    errors.extend(e);
                    continue;
                }
            };
            let versions = by_name.entry(definition.name.clone()).or_default();
            if versions.contains_key(&definition.version) {
                errors.push(Definition::version_error(
                    &file,
                    &source,
                    format!(
                        "saga `{}` version {} is defined twice",
                        definition.name, definition.version
                    ),
                ));
                continue;
            }
            versions.insert(
                definition.version,
                Entry {
                    definition,
                    source: source.into(),
                    file: Some(file),
                },
            );
        }
        if !errors.is_empty() {
            return Err(Errors(errors));
        }
        Ok(Registry {
            by_name: Arc::new(by_name),
            catalogue: catalogue.map(Arc::new),
        })
    }

    /// This registry with the definitions of `newer` added. A version loaded already must
    /// have the same content (hash) in `newer`; versions missing from `newer` are kept, and
    /// one restored from the store counts as loaded from its file once the file is back.
    pub fn merge(&self, newer: Registry) -> Result<Registry, Errors> {
        let mut by_name = (*self.by_name).clone();
        let mut errors = Vec::new();
        for (name, versions) in newer.by_name.iter() {
            let known = by_name.entry(name.clone()).or_default();
            for (version, entry) in versions {
                match known.get(version) {
                    Some(existing) if existing.definition.hash != entry.definition.hash => {
                        let file = entry.file.as_deref().unwrap_or(name);
                        errors.push(Definition::version_error(
                            file,
                            &entry.source,
                            format!(
                                "saga `{name}` version {version} changed while loaded: \
                                 bump the version for the new content"
                            ),
                        ));
                    }
                    Some(existing) if existing.file.is_some() => {}
                    _ => {
                        known.insert(*version, entry.clone());
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(Errors(errors));
        }
        Ok(Registry {
            by_name: Arc::new(by_name),
            catalogue: newer.catalogue.or_else(|| self.catalogue.clone()),
        })
    }

    /// This registry with `entry` added, unless its version is there already: a version
    /// restored from the store for the sagas that run on it.
    pub fn with_restored(&self, entry: Entry) -> Registry {
        let mut by_name = (*self.by_name).clone();
        by_name
            .entry(entry.definition.name.clone())
            .or_default()
            .entry(entry.definition.version)
            .or_insert(entry);
        Registry {
            by_name: Arc::new(by_name),
            catalogue: self.catalogue.clone(),
        }
    }

    /// Version `version` of saga `name`, loaded from a file or restored from the store: the
    /// definition its sagas run on.
    pub fn get(&self, name: &str, version: u32) -> Option<&Definition> {
        self.entry(name, version).map(|e| &e.definition)
    }

    /// Version `version` of saga `name` with its source and where it came from.
    pub fn entry(&self, name: &str, version: u32) -> Option<&Entry> {
        self.by_name.get(name)?.get(&version)
    }

    /// Version `version` of saga `name` if it was loaded from a file: one new sagas may run.
    pub fn startable(&self, name: &str, version: u32) -> Option<&Entry> {
        self.entry(name, version).filter(|e| e.file.is_some())
    }

    /// The newest version of saga `name` loaded from a file.
    pub fn latest(&self, name: &str) -> Option<&Definition> {
        self.latest_entry(name).map(|e| &e.definition)
    }

    /// [`Registry::latest`] with its source.
    pub fn latest_entry(&self, name: &str) -> Option<&Entry> {
        self.by_name
            .get(name)?
            .values()
            .rev()
            .find(|e| e.file.is_some())
    }

    /// Every definition loaded from a file, by name then version.
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.entries()
            .filter(|e| e.file.is_some())
            .map(|e| &e.definition)
    }

    /// Every version, restored ones included, by name then version.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_name.values().flat_map(|v| v.values())
    }

    /// The names of the sagas with a version loaded from a file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name
            .iter()
            .filter(|(_, versions)| versions.values().any(|e| e.file.is_some()))
            .map(|(name, _)| name.as_str())
    }

    pub fn catalogue(&self) -> Option<&Catalogue> {
        self.catalogue.as_deref()
    }

    /// Whether no version is loaded from a file.
    pub fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }

    /// This registry with each version's hash set by `hash_of` (the stored hash of a version
    /// whose content the store holds under a hash an older build computed).
    pub(crate) fn with_hashes(&self, hash_of: impl Fn(&Entry) -> Option<String>) -> Registry {
        let mut by_name = (*self.by_name).clone();
        for entry in by_name.values_mut().flat_map(|v| v.values_mut()) {
            if let Some(hash) = hash_of(entry) {
                entry.definition.hash = hash;
            }
        }
        Registry {
            by_name: Arc::new(by_name),
            catalogue: self.catalogue.clone(),
        }
    }
}
