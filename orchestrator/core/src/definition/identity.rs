//! What a definition version *is*: its content hash, and where its `version` is written.
//!
//! A (name, version) never changes meaning once sagas run on it, so the orchestrator stores
//! each version with a hash of its content and refuses a file that reuses the pair for other
//! content. The hash is of the validated [`Definition`] in a canonical form, not of the file's
//! bytes: whitespace, comments, key order and `"10s"` against `"10000ms"` do not change it;
//! anything the saga would do differently does.
//!
//! ```
//! use saga_core::Definition;
//! let a = Definition::from_toml("a.toml", "[saga]\nname = \"d\"\nversion = 1\n[[step]]\nname = \"s\"\nparticipant = \"p\"\ncommand = \"C\"\n").unwrap();
//! let b = Definition::from_toml("b.toml", "# the same saga, written otherwise\n[saga]\nversion = 1\nname = \"d\"\n\n[[step]]\ncommand = \"C\"\nname = \"s\"\nparticipant = \"p\"\n").unwrap();
//! assert_eq!(a.hash, b.hash);
//! assert_eq!(a.hash.len(), 64);
//! ```

use super::{Definition, DefinitionError, SourceMap};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

/// The content hash of `def`: sha256 of its canonical JSON, as 64 lowercase hex digits.
///
/// The canonical form is serde_json of the validated definition (its `hash` field left out):
/// every map in it is a `BTreeMap`, and serde_json's own objects are sorted too (the workspace
/// does not enable `preserve_order`), so the bytes depend on the content alone.
pub(crate) fn content_hash(def: &Definition) -> String {
    // Serializing plain data to a Vec cannot fail; an empty form would still hash stably.
    let canonical = serde_json::to_vec(def).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Only the `version` key, with where it is written.
#[derive(Deserialize)]
struct Head {
    saga: HeadSaga,
}

#[derive(Deserialize)]
struct HeadSaga {
    version: Spanned<u32>,
}

impl Definition {
    /// An error about this definition's version, pointing at `version = …` in `src` (the
    /// file's first line when it cannot be found), for messages such as "this version is
    /// stored with other content".
    pub fn version_error(file: &str, src: &str, message: String) -> DefinitionError {
        match toml::from_str::<Head>(src) {
            Ok(head) => SourceMap::new(file, src).error(head.saga.version.span(), message),
            Err(_) => DefinitionError::whole_file(file, message),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SRC: &str = "[saga]\nname = \"d\"\nversion = 1\n[[step]]\nname = \"s\"\nparticipant = \"p\"\ncommand = \"C\"\ntimeout = \"10s\"\n";

    #[test]
    fn the_hash_follows_the_content_not_the_text() {
        let def = Definition::from_toml("d.toml", SRC).unwrap();
        let spaced = SRC.replace("\"10s\"", "\"10000ms\"  # the same ten seconds");
        assert_eq!(
            Definition::from_toml("e.toml", &spaced).unwrap().hash,
            def.hash,
            "the file name and the way a duration is written do not count"
        );
        let longer = SRC.replace("\"10s\"", "\"11s\"");
        assert_ne!(
            Definition::from_toml("d.toml", &longer).unwrap().hash,
            def.hash
        );
        assert!(def.hash.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_version_error_points_at_the_version() {
        let e = Definition::version_error("d.toml", SRC, "changed".into());
        assert_eq!((e.line, e.column), (3, 11));
        assert_eq!(&SRC[e.span], "1");
        let e = Definition::version_error("d.toml", "not toml [", "changed".into());
        assert_eq!((e.line, e.column), (1, 1));
    }
}
