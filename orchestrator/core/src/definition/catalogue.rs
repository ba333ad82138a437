//! The participants catalogue (`sagas/participants.toml`): every participant's commands,
//! whether each performs or undoes an effect, and their input and output fields.
//!
//! ```
//! use saga_core::definition::Catalogue;
//! let catalogue = Catalogue::from_toml("participants.toml", r#"
//!     [account.ReserveCredit]
//!     kind = "forward"
//!     input = { customer_id = "string", amount = "integer" }
//!     output = { reserved = "integer" }
//!
//!     [account.ReleaseCredit]
//!     kind = "compensation"
//!     undoes = "ReserveCredit"
//!     input = { customer_id = "string" }
//! "#).unwrap();
//! assert!(catalogue.command("account", "ReserveCredit").is_some());
//! assert_eq!(catalogue.pairs("account"), [("ReserveCredit", Some("ReleaseCredit"))]);
//! ```

use super::types::{Field, RawField};
use super::{DefinitionError, Errors, SourceMap};
use saga_protocol::CommandKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// One command a participant offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandSpec {
    pub kind: CommandKind,
    /// For a compensation, the forward command of the same participant whose effect it
    /// undoes (`undoes = "ReserveCredit"`): a step using it must run that command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    pub input: BTreeMap<String, Field>,
    pub output: BTreeMap<String, Field>,
}

/// Participants and their commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalogue {
    pub participants: BTreeMap<String, BTreeMap<String, CommandSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    kind: CommandKind,
    #[serde(default)]
    undoes: Option<Spanned<String>>,
    #[serde(default)]
    input: BTreeMap<String, Spanned<RawField>>,
    #[serde(default)]
    output: BTreeMap<String, Spanned<RawField>>,
}

impl Catalogue {
    /// Parses and checks a catalogue; `file` is only used in messages.
    pub fn from_toml(file: &str, src: &str) -> Result<Self, Errors> {
        let map = SourceMap::new(file, src);
        let raw: BTreeMap<String, BTreeMap<String, RawCommand>> =
            toml::from_str(src).map_err(|e| Errors(vec![map.toml_error(&e)]))?;
        let mut errors = Vec::new();
        let mut participants = BTreeMap::new();
        let mut undone = Vec::new();
        for (participant, commands) in raw {
            let mut specs = BTreeMap::new();
            for (name, cmd) in commands {
                let mut fields = |raw: BTreeMap<String, Spanned<RawField>>| {
                    let mut out = BTreeMap::new();
                    for (field, spanned) in raw {
                        let span = spanned.span();
                        match spanned.into_inner().resolve() {
                            Ok(f) => {
                                out.insert(field, f);
                            }
                            Err(m) => errors.push(map.error(span, format!("field `{field}`: {m}"))),
                        }
                    }
                    out
                };
                let input = fields(cmd.input);
                let output = fields(cmd.output);
                let undoes = cmd.undoes.map(|u| {
                    undone.push((
                        participant.clone(),
                        name.clone(),
                        cmd.kind,
                        u.span(),
                        u.get_ref().clone(),
                    ));
                    u.into_inner()
                });
                specs.insert(
                    name,
                    CommandSpec {
                        kind: cmd.kind,
                        undoes,
                        input,
                        output,
                    },
                );
            }
            participants.insert(participant, specs);
        }
        // `undoes` names a forward command of the same participant, on a compensation only.
        for (participant, name, kind, span, target) in undone {
            let commands = participants.get(&participant);
            let problem = if kind != CommandKind::Compensation {
                Some(format!(
                    "{participant}.{name} is a forward command: only a compensation undoes one"
                ))
            } else {
                match commands.and_then(|c| c.get(&target)) {
                    Some(spec) if spec.kind == CommandKind::Forward => None,
                    Some(_) => Some(format!(
                        "{participant}.{target}, which {participant}.{name} undoes, is not a forward command"
                    )),
                    None => Some(format!(
                        "{participant} has no command `{target}` for {participant}.{name} to undo"
                    )),
                }
            };
            if let Some(problem) = problem {
                errors.push(map.error(span, problem));
            }
        }
        if errors.is_empty() {
            Ok(Catalogue { participants })
        } else {
            Err(Errors(errors))
        }
    }

    /// Reads and checks one catalogue file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, Errors> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| {
            Errors(vec![DefinitionError::whole_file(
                &file,
                format!("cannot read: {e}"),
            )])
        })?;
        Self::from_toml(&file, &src)
    }

    pub fn command(&self, participant: &str, command: &str) -> Option<&CommandSpec> {
        self.participants.get(participant)?.get(command)
    }

    /// The forward commands of `participant` with the compensation that undoes each, if the
    /// catalogue says (`undoes`).
    pub fn pairs(&self, participant: &str) -> Vec<(&str, Option<&str>)> {
        let Some(commands) = self.participants.get(participant) else {
            return Vec::new();
        };
        commands
            .iter()
            .filter(|(_, spec)| spec.kind == CommandKind::Forward)
            .map(|(forward, _)| {
                let undo = commands.iter().find_map(|(name, spec)| {
                    (spec.undoes.as_deref() == Some(forward.as_str())).then_some(name.as_str())
                });
                (forward.as_str(), undo)
            })
            .collect()
    }

    /// Checks a participant's implementation against the catalogue: every command the
    /// catalogue lists for `participant` is implemented with the same kind, and nothing else
    /// is. Returns every mismatch, one per line.
    pub fn check_participant(
        &self,
        participant: &str,
        implemented: &[(&str, CommandKind)],
    ) -> Result<(), String> {
        let listed = self.participants.get(participant);
        let mut problems = Vec::new();
        for (name, spec) in listed.into_iter().flatten() {
            match implemented.iter().find(|(n, _)| n == name) {
                None => problems.push(format!(
                    "the catalogue lists {participant}.{name}, which this build does not implement"
                )),
                Some((_, kind)) if *kind != spec.kind => problems.push(format!(
                    "{participant}.{name} is {:?} in the catalogue but {kind:?} here",
                    spec.kind
                )),
                Some(_) => {}
            }
        }
        for (name, _) in implemented {
            if listed.is_none_or(|l| !l.contains_key(*name)) {
                problems.push(format!(
                    "{participant}.{name} is implemented but missing from the catalogue"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}
