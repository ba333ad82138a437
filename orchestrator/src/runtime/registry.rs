//! The saga definitions this orchestrator runs, loaded from `sagas/*.toml` at start-up.

use saga_core::{Definition, DefinitionError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Validated definitions by name. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_name: Arc<BTreeMap<String, Definition>>,
}

impl Registry {
    /// Loads every `*.toml` file of `dir` and reports every invalid one (not just the first).
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<DefinitionError>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![DefinitionError {
                file: dir.display().to_string(),
                line: 1,
                column: 1,
                message: format!("cannot read the definitions directory: {e}"),
            }]
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut defs = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            match Definition::from_file(&path) {
                Ok(def) => defs.push(def),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self::from_definitions(defs))
    }

    pub fn from_definitions(defs: impl IntoIterator<Item = Definition>) -> Self {
        Registry {
            by_name: Arc::new(defs.into_iter().map(|d| (d.name.clone(), d)).collect()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
