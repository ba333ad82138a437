//! Who may call the API: named bearer tokens, each with a role.
//!
//! A tokens file (`--api-tokens` / `SAGA_API_TOKENS`) lists callers by name, role and the
//! SHA-256 of their token, so the file itself holds no secret; `saga api token` makes a token
//! and its entry. The single `--token` / `SAGA_API_TOKEN` is an admin caller named `admin`.
//! The file is read again on SIGHUP, which is how a token is added, rotated or revoked
//! without a restart.
//!
//! ```toml
//! [[tokens]]
//! name = "alice"
//! role = "operate"
//! sha256 = "5f0c…"   # 64 hex digits: sha256 of the token alice sends
//! ```

mod file;

pub use file::{TokensError, write_entry};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What a caller may do. Each role may do everything the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Status, history, search, overview, definitions listed and validated, the feed, metrics.
    Read,
    /// Read, and start sagas and act on them (retry, skip, abort, cancel).
    Operate,
    /// Operate, and change the definitions (reload, retire).
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use read, operate or admin"))
    }
}

/// An authenticated caller: a request carries it as an extension once its token matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Callers by the SHA-256 of their token.
pub(crate) type Callers = HashMap<[u8; 32], Caller>;

/// The callers the API knows, by the digest of their token; cheap to clone, shared with the
/// request path, and replaced whole on [`Tokens::reload`].
#[derive(Clone, Default)]
pub struct Tokens {
    file: Option<PathBuf>,
    single: Option<[u8; 32]>,
    known: Arc<RwLock<Arc<Callers>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests only, and not even those: a Debug print is for logs.
        f.debug_struct("Tokens")
            .field("file", &self.file)
            .field("callers", &self.callers())
            .finish()
    }
}

/// The SHA-256 of `token`, as stored in a tokens file.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Tokens {
    /// No tokens: the API authenticates no one (and may then only listen on loopback).
    pub fn none() -> Self {
        Tokens::default()
    }

    /// The tokens of the settings: the single admin `token` (blank is none) and the callers
    /// of `file`.
    pub fn from_settings(token: Option<&str>, file: Option<&Path>) -> Result<Self, TokensError> {
        let single = token.map(str::trim).filter(|t| !t.is_empty()).map(digest);
        let tokens = Tokens {
            file: file.map(Path::to_path_buf),
            single,
            known: Arc::default(),
        };
        tokens.reload()?;
        Ok(tokens)
    }

    /// Reads the tokens file again (a no-op without one); on an error the callers stay as
    /// they were. Returns how many callers there are now.
    pub fn reload(&self) -> Result<usize, TokensError> {
        let mut known = HashMap::new();
        if let Some(digest) = self.single {
            known.insert(
                digest,
                Caller {
                    name: "admin".into(),
                    role: Role::Admin,
                },
            );
        }
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
                path: path.clone(),
                source,
            })?;
            let parsed = file::parse(path, &text, &known)?;
            known.extend(parsed);
        }
        let count = known.len();
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(known);
        Ok(count)
    }

    /// Whether the API checks tokens: a token or a tokens file is set (a file with no
    /// callers then lets no one in, until a reload adds some).
    pub fn enabled(&self) -> bool {
        self.single.is_some() || self.file.is_some()
    }

    /// Whether no caller is known.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// The caller whose token is `presented`, if any.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        self.snapshot().get(&digest(presented)).cloned()
    }

    /// Names and roles of the known callers, sorted by name.
    pub fn callers(&self) -> Vec<(String, Role)> {
        let mut all: Vec<_> = self
            .snapshot()
            .values()
            .map(|c| (c.name.clone(), c.role))
            .collect();
        all.sort();
        all
    }

    fn snapshot(&self) -> Arc<Callers> {
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(text: &str) -> Result<Tokens, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Tokens::from_settings(None, Some(&path)).map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        })
    }

    fn entry(name: &str, role: &str, token: &str) -> String {
        format!(
            "[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hex(&digest(token))
        )
    }

    #[test]
    fn a_token_names_its_caller_and_role() {
        let tokens =
            load(&(entry("alice", "operate", "a-secret") + &entry("rob", "read", "r"))).unwrap();
        assert_eq!(
            tokens.caller("a-secret"),
            Some(Caller {
                name: "alice".into(),
                role: Role::Operate
            })
        );
        assert_eq!(tokens.caller("r").map(|c| c.role), Some(Role::Read));
        assert_eq!(tokens.caller("a-secre"), None);
        assert_eq!(tokens.callers().len(), 2);
    }

    #[test]
    fn the_single_token_is_an_admin_named_admin() {
        let tokens = Tokens::from_settings(Some(" s3cret "), None).unwrap();
        assert_eq!(
            tokens.caller("s3cret"),
            Some(Caller {
                name: "admin".into(),
                role: Role::Admin
            })
        );
        assert!(Tokens::from_settings(Some("  "), None).is_ok_and(|t| t.is_empty()));
    }

    #[test]
    fn a_bad_file_is_refused_at_its_line_and_column() {
        let cases = [
            (
                "[[tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"00\"\n",
                "root",
            ),
            (&*entry("a b", "read", "x"), "not a caller name"),
            (
                "[[tokens]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"abc\"\n",
                "64 hex digits",
            ),
            (
                &*(entry("a", "read", "x") + &entry("a", "admin", "y")),
                "named twice",
            ),
            (
                &*(entry("a", "read", "x") + &entry("b", "admin", "x")),
                "another caller's",
            ),
            (
                "[[tokens]]\nname = \"a\"\nrole = \"read\"\nsha256 = \"\"\ntoken = \"x\"\n",
                "token",
            ),
        ];
        let found: Vec<String> = cases
            .iter()
            .map(|(text, expect)| {
                let e = load(text).err().unwrap_or_default();
                assert!(e.contains(expect), "{e} should mention {expect}");
                e
            })
            .collect();
        insta::assert_snapshot!(found.join("\n"));
    }

    #[test]
    fn entries_are_written_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        write_entry(&path, "alice", Role::Operate, "one", false).unwrap();
        write_entry(&path, "rob", Role::Read, "r", false).unwrap();
        let refused = write_entry(&path, "alice", Role::Admin, "two", false).unwrap_err();
        assert!(refused.to_string().contains("--replace"), "{refused}");
        write_entry(&path, "alice", Role::Admin, "two", true).unwrap();
        let tokens = Tokens::from_settings(None, Some(&path)).unwrap();
        assert_eq!(tokens.caller("one"), None);
        assert_eq!(tokens.caller("two").map(|c| c.role), Some(Role::Admin));
        assert_eq!(tokens.caller("r").map(|c| c.name), Some("rob".into()));
        assert!(write_entry(&path, "../x", Role::Read, "x", false).is_err());
    }

    #[test]
    fn a_reload_that_fails_keeps_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, entry("alice", "read", "one")).unwrap();
        let tokens = Tokens::from_settings(None, Some(&path)).unwrap();
        std::fs::write(&path, entry("alice", "read", "two")).unwrap();
        assert_eq!(tokens.reload().ok(), Some(1));
        assert_eq!(tokens.caller("one"), None, "the old token is revoked");
        assert!(tokens.caller("two").is_some(), "the new one is taken");
        std::fs::write(&path, "tokens = 3").unwrap();
        assert!(tokens.reload().is_err());
        assert!(tokens.caller("two").is_some(), "a bad file changes nothing");
    }
}
