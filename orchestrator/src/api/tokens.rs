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
    /// Read, and start sagas and act on them (retry, skip, abort).
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

/// Why the tokens could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the API tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<toml::Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: toml::Spanned<String>,
    role: Role,
    sha256: toml::Spanned<String>,
}

/// Callers by the SHA-256 of their token.
type Callers = HashMap<[u8; 32], Caller>;

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
            parse(path, &text, &mut known)?;
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

fn parse(path: &Path, text: &str, known: &mut Callers) -> Result<(), TokensError> {
    let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = line_column(text, span.map_or(0, |s| s.start));
        TokensError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let file: File = toml::from_str(text).map_err(|e| invalid(e.span(), e.message().into()))?;
    let mut names = std::collections::HashSet::new();
    for spanned in file.tokens {
        let span = spanned.span();
        let entry = spanned.into_inner();
        let name_span = entry.name.span();
        let name = entry.name.into_inner();
        if let Err(message) = check_name(&name) {
            return Err(invalid(Some(name_span), message));
        }
        let digest = parse_digest(entry.sha256.get_ref()).ok_or_else(|| {
            invalid(
                Some(entry.sha256.span()),
                format!(
                    "the sha256 of `{name}` must be 64 hex digits (`saga api token` writes it)"
                ),
            )
        })?;
        let entry = (name, entry.role);
        let (name, role) = entry;
        if !names.insert(name.clone()) || known.values().any(|c| c.name == name) {
            return Err(invalid(
                Some(name_span),
                format!("`{name}` is named twice: each caller has one token"),
            ));
        }
        if known.contains_key(&digest) {
            return Err(invalid(
                Some(span),
                format!("the token of `{name}` is another caller's too: make each one anew"),
            ));
        }
        known.insert(digest, Caller { name, role });
    }
    Ok(())
}

/// A caller's name is 1 to 64 letters, digits or `- _ . @`: it is recorded in events and logs.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a caller name: 1 to 64 letters, digits or - _ . @"
        ))
    }
}

/// Writes the entry of caller `name` (its `role` and the digest of `token`) into the tokens
/// file at `path`, creating the file if need be. An entry of the same name is refused, or
/// replaced with `replace` (a rotation: the old token stops working at the next reload).
pub fn write_entry(
    path: &Path,
    name: &str,
    role: Role,
    token: &str,
    replace: bool,
) -> Result<(), TokensError> {
    let invalid = |message: String| TokensError::Invalid {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
    };
    check_name(name).map_err(invalid)?;
    let mut entries: Vec<(String, Role, String)> = Vec::new();
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(path, &text, &mut HashMap::new())?;
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().into()))?;
        entries = file
            .tokens
            .into_iter()
            .map(|e| {
                let e = e.into_inner();
                (e.name.into_inner(), e.role, e.sha256.into_inner())
            })
            .collect();
    }
    if entries.iter().any(|(n, ..)| n == name) {
        if !replace {
            return Err(invalid(format!(
                "`{name}` has a token already: --replace rotates it"
            )));
        }
        entries.retain(|(n, ..)| n != name);
    }
    entries.push((name.to_string(), role, hex(&digest(token))));
    let mut text = String::from(
        "# Callers of the orchestrator's API: name, role (read, operate or admin) and the\n\
         # SHA-256 of the caller's token. Written by `saga api token`; read again on SIGHUP.\n",
    );
    for (name, role, sha256) in &entries {
        text.push_str(&format!(
            "\n[[tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{sha256}\"\n"
        ));
    }
    let write = |text: &str| -> std::io::Result<()> {
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    };
    write(&text).map_err(|source| TokensError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
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
