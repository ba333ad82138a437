//! Saga definitions: TOML (`sagas/*.toml`) → raw serde structs → a validated [`Definition`],
//! checked against the participants catalogue ([`Catalogue`]) when there is one.
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
//!
//! Every problem is reported, not just the first, each as a [`DefinitionError`] with the
//! file, line and column, the byte span (for a caret under the source) and a hint.
//!
//! Each validated definition carries its content hash ([`Definition::hash`]), which names
//! the version's content wherever it is stored.

mod catalogue;
mod identity;
pub mod mapping;
mod raw;
mod source;
mod types;
mod validate;

pub use catalogue::{Catalogue, CommandSpec};
pub use mapping::{Mapping, MappingValue};
pub use source::{DefinitionError, Errors, SourceMap, render, render_styled};
pub use types::{Field, FieldType, Pattern, Rules};

use crate::policy::RetryPolicy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The text of definition file `path`: an unreadable file, or one that is not UTF-8, is an
/// error of that file (for bytes that are not UTF-8, at the line and column of the first).
pub fn read_source(path: &Path) -> Result<String, DefinitionError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| DefinitionError::whole_file(&file, format!("cannot read: {e}")))?;
    source_text(&file, bytes)
}

/// `bytes` as the text of definition `file`, or an error at the line and column of the first
/// byte that is not UTF-8.
pub fn source_text(file: &str, bytes: Vec<u8>) -> Result<String, DefinitionError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        let bad = bytes.get(valid).copied().unwrap_or_default();
        let message = format!("byte 0x{bad:02X} is not UTF-8: save the definition as UTF-8");
        SourceMap::new(file, &prefix).error(valid..valid, message)
    })
}

/// How a step behaves on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Undone by its compensation when a later step fails.
    Compensatable,
    /// Once it succeeds the saga only goes forward.
    Pivot,
    /// Comes after the pivot: has no compensation and is retried until it succeeds.
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
    /// Steps of one group start together; the group is done when all are.
    pub group: Option<String>,
    /// How long to wait for a reply before the attempt counts as timed out.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Retries of the command after a timeout or a transient failure. A pivot and the steps
    /// after it retry until they succeed, whatever the policy says about attempts.
    pub retry: RetryPolicy,
    /// The command's fields. Without one, the command gets the saga input merged with the
    /// outputs of the steps before it.
    pub input: Option<Mapping>,
    /// The compensation's fields; without one, the same as the command's.
    pub compensation_input: Option<Mapping>,
    /// An await step's signal: it sends no command (`participant` and `command` are empty)
    /// but waits up to `timeout` for this signal, whose payload becomes its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
}

/// The signal an await step waits for (`await = "approval"`), and its payload's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub name: String,
    pub fields: BTreeMap<String, Field>,
}

impl Signal {
    /// `payload` checked against the signal's fields, defaults filled in; the error names the
    /// field and the rule it breaks.
    pub fn check(&self, payload: &serde_json::Value) -> Result<serde_json::Value, String> {
        check_fields(&self.fields, payload, "signal")
    }
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
    /// Input fields, their types, and defaults of the optional ones.
    pub input: BTreeMap<String, Field>,
    pub steps: Vec<Step>,
    /// The whole saga must finish its forward path within this time, or it compensates.
    #[serde(serialize_with = "ser_opt_duration")]
    pub deadline: Option<Duration>,
    /// Retries of every compensation; when they run out the saga is Stuck.
    pub compensation_retry: RetryPolicy,
    /// The content hash (sha256, hex) of everything above, computed at validation: equal
    /// for two files that say the same thing, different when anything the saga would do
    /// differs. Recorded in `SagaStarted` and in the store beside the definition's source.
    /// Left out of the serialized form, which is what it hashes.
    #[serde(skip)]
    pub hash: String,
}

impl Definition {
    /// Parses and validates `src` without a catalogue; `file` is only used in messages.
    pub fn from_toml(file: &str, src: &str) -> Result<Self, Errors> {
        Self::parse(file, src, None)
    }

    /// Parses and validates `src`, checking participants, commands and fields against
    /// `catalogue` when given.
    pub fn parse(file: &str, src: &str, catalogue: Option<&Catalogue>) -> Result<Self, Errors> {
        let map = SourceMap::new(file, src);
        let raw: raw::RawDefinition =
            toml::from_str(src).map_err(|e| Errors(vec![map.toml_error(&e)]))?;
        validate::build(&map, raw, catalogue)
    }

    /// Reads and validates one file.
    pub fn from_file(path: &Path, catalogue: Option<&Catalogue>) -> Result<Self, Errors> {
        let file = path.display().to_string();
        let src = read_source(path).map_err(|e| Errors(vec![e]))?;
        Self::parse(&file, &src, catalogue)
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The steps that start together with `name` (its group, or itself alone), in order.
    pub fn unit_of(&self, name: &str) -> Vec<&Step> {
        match self.step(name).and_then(|s| s.group.as_deref()) {
            Some(group) => self
                .steps
                .iter()
                .filter(|s| s.group.as_deref() == Some(group))
                .collect(),
            None => self.step(name).into_iter().collect(),
        }
    }

    /// The first step after `name`'s unit (group), if any.
    pub fn next_step(&self, name: &str) -> Option<&Step> {
        let unit = self.unit_of(name);
        let last = unit.last()?;
        let i = self.steps.iter().position(|s| s.name == last.name)?;
        self.steps.get(i + 1)
    }

    /// Position of step `name` in the definition.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// Checks `input` against the declared fields and fills in defaults; the message says
    /// what to fix.
    pub fn check_input(&self, input: &serde_json::Value) -> Result<serde_json::Value, String> {
        check_fields(&self.input, input, "input")
    }

    /// The saga's input as a JSON Schema: an object with the declared fields (types, rules,
    /// defaults), the required ones required; `x-saga-version` names the version.
    pub fn input_schema(&self) -> serde_json::Value {
        object_schema(
            &self.input,
            format!("The input of {} version {}", self.name, self.version),
            self.version,
        )
    }

    /// The await step waiting for signal `name`, with its signal, if the definition has one.
    pub fn awaiting(&self, name: &str) -> Option<(&Step, &Signal)> {
        self.steps.iter().find_map(|s| {
            let signal = s.signal.as_ref().filter(|g| g.name == name)?;
            Some((s, signal))
        })
    }
}

/// `fields` as the JSON Schema of an object.
fn object_schema(
    fields: &BTreeMap<String, Field>,
    title: String,
    version: u32,
) -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(name, f)| (name.clone(), f.json_schema()))
        .collect();
    let required: Vec<&String> = fields
        .iter()
        .filter(|(_, f)| f.required)
        .map(|(name, _)| name)
        .collect();
    serde_json::json!({
        "type": "object",
        "title": title,
        "properties": properties,
        "required": required,
        "x-saga-version": version,
    })
}

/// Checks the object `value` against `fields` and fills in defaults; `what` (`input`,
/// `signal`) names it in the message.
fn check_fields(
    fields: &BTreeMap<String, Field>,
    value: &serde_json::Value,
    what: &str,
) -> Result<serde_json::Value, String> {
    let Some(obj) = value.as_object() else {
        let whole = if what == "input" {
            "the saga input"
        } else {
            "a signal's payload"
        };
        return Err(format!("{whole} must be a JSON object"));
    };
    let mut out = obj.clone();
    for (name, field) in fields {
        match obj.get(name) {
            Some(value) => {
                field
                    .check(value)
                    .map_err(|rule| format!("{what} field `{name}` {rule}"))?;
            }
            None if field.required => {
                return Err(format!("missing {what} field `{name}` ({})", field.ty));
            }
            None => {
                if let Some(default) = &field.default {
                    out.insert(name.clone(), default.clone());
                }
            }
        }
    }
    Ok(serde_json::Value::Object(out))
}
