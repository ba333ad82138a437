//! Saga definitions: TOML (`sagas/*.toml`) → raw serde structs → a validated [`Definition`].
//!
//! ```
//! let src = r#"
//! [saga]
//! name = "demo"
//! version = 1
//!
//! [input]
//! customer_id = "string"
//!
//! [[step]]
//! name = "reserve"
//! participant = "account"
//! command = "ReserveCredit"
//! compensation = "ReleaseCredit"
//! "#;
//! let def = saga_core::Definition::from_toml("demo.toml", src).unwrap();
//! assert_eq!(def.steps[0].compensation.as_deref(), Some("ReleaseCredit"));
//! ```

use crate::policy::{RawRetry, RetryPolicy, parse_duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// The type of an input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Boolean,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
        })
    }
}

/// How a step behaves on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Undone by its compensation when a later step fails.
    Compensatable,
    /// Once it succeeds the saga only goes forward.
    Pivot,
    /// Comes after the pivot: has no compensation and must eventually succeed.
    Retriable,
}

/// One step of a validated definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: String,
    pub participant: String,
    pub command: String,
    /// Command that undoes this step, sent to the same participant.
    pub compensation: Option<String>,
    pub kind: StepKind,
    /// How long to wait for a reply before the attempt counts as timed out.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Retries of the command after a timeout or a transient failure. A pivot and the steps
    /// after it retry until they succeed, whatever the policy says about attempts.
    pub retry: RetryPolicy,
}

/// Default step timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default retry policy of compensations: they must succeed, so they are retried longer.
pub fn default_compensation_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: Some(8),
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
        ..RetryPolicy::default()
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// A validated saga definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub name: String,
    pub version: u32,
    pub description: String,
    /// Required input fields and their types.
    pub input: BTreeMap<String, FieldType>,
    pub steps: Vec<Step>,
    /// The whole saga must finish its forward path within this time, or it compensates.
    #[serde(serialize_with = "ser_opt_duration")]
    pub deadline: Option<Duration>,
    /// Retries of every compensation; when they run out the saga is Stuck.
    pub compensation_retry: RetryPolicy,
}

/// A definition that cannot be loaded, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: error: {message}")]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    saga: RawSaga,
    #[serde(default)]
    input: BTreeMap<String, FieldType>,
    #[serde(default)]
    step: Vec<RawStep>,
    compensation_retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSaga {
    name: String,
    version: u32,
    #[serde(default)]
    description: String,
    deadline: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    participant: String,
    command: String,
    compensation: Option<String>,
    #[serde(default)]
    pivot: Option<Spanned<bool>>,
    timeout: Option<Spanned<String>>,
    retry: Option<Spanned<RawRetry>>,
}

impl Definition {
    /// Parses and validates `src`; `file` is only used in error messages.
    pub fn from_toml(file: &str, src: &str) -> Result<Self, DefinitionError> {
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = line_column(src, span.map_or(0, |s| s.start));
            DefinitionError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        let raw: RawDefinition =
            toml::from_str(src).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        if raw.step.is_empty() {
            return Err(at(None, "a saga needs at least one [[step]]".into()));
        }
        let mut steps: Vec<Step> = Vec::with_capacity(raw.step.len());
        let mut pivot_seen = false;
        for s in raw.step {
            let span = s.name.span();
            let name = s.name.into_inner();
            if steps.iter().any(|existing| existing.name == name) {
                return Err(at(Some(span), format!("duplicate step name `{name}`")));
            }
            let pivot = s.pivot.as_ref().is_some_and(|p| *p.get_ref());
            if pivot {
                if pivot_seen {
                    let span = s.pivot.map(|p| p.span());
                    return Err(at(span, "a saga has at most one pivot step".into()));
                }
                if s.compensation.is_some() {
                    return Err(at(
                        Some(span),
                        format!(
                            "pivot step `{name}` cannot have a compensation: it is never undone"
                        ),
                    ));
                }
            } else if pivot_seen && s.compensation.is_some() {
                return Err(at(
                    Some(span),
                    format!(
                        "step `{name}` comes after the pivot, so it is never compensated: remove its compensation"
                    ),
                ));
            }
            let timeout = match s.timeout {
                Some(t) => {
                    let span = t.span();
                    parse_duration("timeout", t.get_ref()).map_err(|m| at(Some(span), m))?
                }
                None => DEFAULT_TIMEOUT,
            };
            let retry = match s.retry {
                Some(r) => {
                    let span = r.span();
                    r.into_inner()
                        .resolve(&RetryPolicy::default())
                        .map_err(|m| at(Some(span), m))?
                }
                None => RetryPolicy::default(),
            };
            steps.push(Step {
                name,
                participant: s.participant,
                command: s.command,
                compensation: s.compensation,
                timeout,
                retry,
                kind: match (pivot, pivot_seen) {
                    (true, _) => StepKind::Pivot,
                    (false, true) => StepKind::Retriable,
                    (false, false) => StepKind::Compensatable,
                },
            });
            pivot_seen |= pivot;
        }
        let deadline = match raw.saga.deadline {
            Some(d) => {
                let span = d.span();
                Some(parse_duration("deadline", d.get_ref()).map_err(|m| at(Some(span), m))?)
            }
            None => None,
        };
        let compensation_retry = match raw.compensation_retry {
            Some(r) => {
                let span = r.span();
                r.into_inner()
                    .resolve(&default_compensation_retry())
                    .map_err(|m| at(Some(span), m))?
            }
            None => default_compensation_retry(),
        };
        Ok(Definition {
            name: raw.saga.name,
            version: raw.saga.version,
            description: raw.saga.description,
            input: raw.input,
            steps,
            deadline,
            compensation_retry,
        })
    }

    /// Reads and validates one file.
    pub fn from_file(path: &Path) -> Result<Self, DefinitionError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| DefinitionError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read: {e}"),
        })?;
        Self::from_toml(&file, &src)
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The step after `name`, if any.
    pub fn next_step(&self, name: &str) -> Option<&Step> {
        let i = self.steps.iter().position(|s| s.name == name)?;
        self.steps.get(i + 1)
    }

    /// Checks `input` against the declared input fields; the message says what to fix.
    pub fn check_input(&self, input: &serde_json::Value) -> Result<(), String> {
        let Some(obj) = input.as_object() else {
            return Err("the saga input must be a JSON object".into());
        };
        for (field, ty) in &self.input {
            let Some(value) = obj.get(field) else {
                return Err(format!("missing input field `{field}` ({ty})"));
            };
            let ok = match ty {
                FieldType::String => value.is_string(),
                FieldType::Integer => value.is_i64(),
                FieldType::Boolean => value.is_boolean(),
            };
            if !ok {
                return Err(format!("input field `{field}` must be {ty}, got {value}"));
            }
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        match Definition::from_toml("t.toml", src) {
            Ok(_) => "accepted".into(),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str = "[saga]\nname = \"t\"\nversion = 1\n";

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        insta::assert_snapshot!(err("[saga]\nname = \"t\nversion = 1\n"), @"t.toml:2:10: error: invalid basic string, expected `\"`");
    }

    #[test]
    fn reports_unknown_keys() {
        insta::assert_snapshot!(err(&format!("{HEAD}colour = 1\n")), @"t.toml:4:1: error: unknown field `colour`, expected one of `name`, `version`, `description`, `deadline`");
    }

    #[test]
    fn refuses_duplicate_steps_and_two_pivots() {
        let step = |n: &str, extra: &str| {
            format!("[[step]]\nname = \"{n}\"\nparticipant = \"p\"\ncommand = \"C\"\n{extra}")
        };
        insta::assert_snapshot!(err(&format!("{HEAD}{}{}", step("a", ""), step("a", ""))), @"t.toml:9:8: error: duplicate step name `a`");
        insta::assert_snapshot!(err(&format!("{HEAD}{}{}", step("a", "pivot = true\n"), step("b", "pivot = true\n"))), @"t.toml:13:9: error: a saga has at most one pivot step");
        insta::assert_snapshot!(err(&format!("{HEAD}{}{}", step("a", "pivot = true\n"), step("b", "compensation = \"U\"\n"))), @"t.toml:10:8: error: step `b` comes after the pivot, so it is never compensated: remove its compensation");
        insta::assert_snapshot!(err(HEAD), @"t.toml:1:1: error: a saga needs at least one [[step]]");
    }
}
