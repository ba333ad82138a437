//! The saga definitions this orchestrator runs, by name and version, loaded from
//! `sagas/*.toml` and checked against the participants catalogue (`sagas/participants.toml`).
//!
//! A saga always finishes on the definition version it started with, so reloading adds
//! versions and never drops one: a version that is already loaded cannot change (bump the
//! version instead), and one whose file is gone stays loaded for the sagas still running it.

use saga_core::{Catalogue, Definition, DefinitionError, Errors};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Name of the catalogue file inside a definitions directory.
pub const CATALOGUE_FILE: &str = "participants.toml";

/// Validated definitions by name and version. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_name: Arc<BTreeMap<String, BTreeMap<u32, Definition>>>,
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
        let mut defs: Vec<(String, Definition)> = Vec::new();
        for path in paths.into_iter().filter(|p| *p != catalogue_path) {
            match Definition::from_file(&path, catalogue.as_ref()) {
                Ok(def) => defs.push((path.display().to_string(), def)),
                Err(Errors(e)) => errors.extend(e),
            }
        }
        let mut by_name: BTreeMap<String, BTreeMap<u32, Definition>> = BTreeMap::new();
        for (file, def) in defs {
            let versions = by_name.entry(def.name.clone()).or_default();
            if versions.contains_key(&def.version) {
                errors.push(DefinitionError::whole_file(
                    &file,
                    format!(
                        "saga `{}` version {} is defined twice",
                        def.name, def.version
                    ),
                ));
                continue;
            }
            versions.insert(def.version, def);
        }
        if !errors.is_empty() {
            return Err(Errors(errors));
        }
        Ok(Registry {
            by_name: Arc::new(by_name),
            catalogue: catalogue.map(Arc::new),
        })
    }

    pub fn from_definitions(defs: impl IntoIterator<Item = Definition>) -> Self {
        let mut by_name: BTreeMap<String, BTreeMap<u32, Definition>> = BTreeMap::new();
        for d in defs {
            by_name
                .entry(d.name.clone())
                .or_default()
                .insert(d.version, d);
        }
        Registry {
            by_name: Arc::new(by_name),
            catalogue: None,
        }
    }

    /// This registry with the definitions of `newer` added. A version loaded already must be
    /// identical in `newer`; versions missing from `newer` are kept.
    pub fn merge(&self, newer: Registry) -> Result<Registry, Errors> {
        let mut by_name = (*self.by_name).clone();
        let mut errors = Vec::new();
        for (name, versions) in newer.by_name.iter() {
            let known = by_name.entry(name.clone()).or_default();
            for (version, def) in versions {
                match known.get(version) {
                    Some(existing) if existing != def => errors.push(DefinitionError::whole_file(
                        name,
                        format!("saga `{name}` version {version} changed while loaded: give the new definition a new version"),
                    )),
                    Some(_) => {}
                    None => {
                        known.insert(*version, def.clone());
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

    /// Version `version` of saga `name`.
    pub fn get(&self, name: &str, version: u32) -> Option<&Definition> {
        self.by_name.get(name)?.get(&version)
    }

    /// The newest version of saga `name`.
    pub fn latest(&self, name: &str) -> Option<&Definition> {
        self.by_name.get(name)?.values().next_back()
    }

    /// Every loaded definition, by name then version.
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.by_name.values().flat_map(|v| v.values())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn catalogue(&self) -> Option<&Catalogue> {
        self.catalogue.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
