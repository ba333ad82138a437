//! The tokens file: read with each error at its line and column, and written by
//! `saga api token`, atomically.

use super::{Caller, Callers, Role, digest, hex};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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

/// The callers of tokens file `path` holding `text`, in file order, each checked against the
/// others and against the callers `known` already.
pub(super) fn parse(
    path: &Path,
    text: &str,
    known: &Callers,
) -> Result<Vec<([u8; 32], Caller)>, TokensError> {
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
    let mut parsed: Vec<([u8; 32], Caller)> = Vec::new();
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
        let role = entry.role;
        if !names.insert(name.clone()) || known.values().any(|c| c.name == name) {
            return Err(invalid(
                Some(name_span),
                format!("`{name}` is named twice: each caller has one token"),
            ));
        }
        if known.contains_key(&digest) || parsed.iter().any(|(d, _)| *d == digest) {
            return Err(invalid(
                Some(span),
                format!("the token of `{name}` is another caller's too: make each one anew"),
            ));
        }
        parsed.push((digest, Caller { name, role }));
    }
    Ok(parsed)
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
        entries = parse(path, &text, &Callers::new())?
            .into_iter()
            .map(|(digest, caller)| (caller.name, caller.role, hex(&digest)))
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
