//! Building a [`Definition`] from its raw TOML shape, checking everything that can be known
//! before deploy, and collecting every problem with its place in the source.

mod await_step;
mod mapping;

use await_step::Others;

use super::raw::{RawDefinition, RawStep};
use super::source::closest;
use super::types::Field;
use super::{
    Catalogue, CommandSpec, Definition, DefinitionError, Errors, SourceMap, Step, StepKind,
};
use super::{DEFAULT_TIMEOUT, default_compensation_retry};
use crate::policy::{RetryPolicy, parse_duration};
use saga_protocol::CommandKind;
use std::collections::BTreeMap;

pub(super) fn build(
    map: &SourceMap,
    raw: RawDefinition,
    catalogue: Option<&Catalogue>,
) -> Result<Definition, Errors> {
    let mut errors: Vec<DefinitionError> = Vec::new();
    if let Err(m) = check_name("saga", raw.saga.name.get_ref()) {
        errors.push(map.error(raw.saga.name.span(), m).with_hint(NAME_HINT));
    }
    let mut input = BTreeMap::new();
    // Every declared name, even one whose type is wrong: a mapping reading it is not wrong too.
    let declared: Vec<String> = raw.input.keys().cloned().collect();
    for (name, field) in raw.input {
        let span = field.span();
        match field.into_inner().resolve() {
            Ok(f) => {
                input.insert(name, f);
            }
            Err(m) => errors.push(map.error(span, format!("input field `{name}`: {m}"))),
        }
    }
    let deadline = raw.saga.deadline.and_then(|d| {
        let span = d.span();
        parse_duration("deadline", d.get_ref())
            .map_err(|m| errors.push(map.error(span, m)))
            .ok()
    });
    let compensation_retry = match raw.compensation_retry {
        Some(r) => {
            let span = r.span();
            r.into_inner()
                .resolve(&default_compensation_retry())
                .unwrap_or_else(|m| {
                    errors.push(map.error(span, m));
                    default_compensation_retry()
                })
        }
        None => default_compensation_retry(),
    };
    if raw.step.is_empty() {
        errors.push(
            map.error(0..0, "a saga needs at least one [[step]]".into())
                .with_hint("add [[step]] tables with name, participant and command"),
        );
    }

    let mut steps: Vec<Step> = Vec::with_capacity(raw.step.len());
    let mut checker = Checker {
        map,
        catalogue,
        input: &input,
        declared: &declared,
        errors: &mut errors,
    };
    let mut pivot: Option<usize> = None;
    let mut closed_groups: Vec<String> = Vec::new();
    for (i, s) in raw.step.into_iter().enumerate() {
        let step = checker.step(s, i, &steps, &mut pivot, &mut closed_groups);
        if let Some(step) = step {
            steps.push(step);
        }
    }
    if errors.is_empty() {
        let mut def = Definition {
            name: raw.saga.name.into_inner(),
            version: raw.saga.version,
            description: raw.saga.description,
            input,
            steps,
            deadline,
            compensation_retry,
            hash: String::new(),
        };
        def.hash = super::identity::content_hash(&def);
        Ok(def)
    } else {
        errors.sort_by_key(|e| e.span.start);
        Err(Errors(errors))
    }
}

const NAME_HINT: &str = "a name is 1 to 64 ASCII letters, digits, `_` or `-`, starting with a letter: it is part of URLs, subjects and message ids";

/// A saga's or a step's name: 1 to 64 ASCII letters, digits, `_` or `-`, starting with a
/// letter, so that it is safe in a URL path, a NATS subject token and a message id.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if starts && rest && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!("{what} name {name:?} is not a safe name"))
    }
}

struct Checker<'a, 'm> {
    map: &'a SourceMap<'m>,
    catalogue: Option<&'a Catalogue>,
    input: &'a BTreeMap<String, Field>,
    declared: &'a [String],
    errors: &'a mut Vec<DefinitionError>,
}

impl Checker<'_, '_> {
    fn err(&mut self, span: std::ops::Range<usize>, message: String) -> &mut DefinitionError {
        self.errors.push(self.map.error(span, message));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Checks one step against those before it; `None` when it is too broken to keep.
    fn step(
        &mut self,
        s: RawStep,
        index: usize,
        earlier: &[Step],
        pivot: &mut Option<usize>,
        closed_groups: &mut Vec<String>,
    ) -> Option<Step> {
        let name_span = s.name.span();
        let name = s.name.into_inner();
        if let Err(m) = check_name("step", &name) {
            self.err(name_span.clone(), m).hint = Some(NAME_HINT.into());
        }
        if earlier.iter().any(|e| e.name == name) {
            self.err(name_span.clone(), format!("duplicate step name `{name}`"))
                .hint = Some("step names must be unique: outputs are referred to by name".into());
        }
        if let Some(signal) = s.awaits {
            return self.await_step(
                s.signal,
                s.timeout,
                signal,
                name,
                earlier,
                *pivot,
                Others {
                    participant: s.participant.map(|p| p.span()),
                    command: s.command.map(|c| c.span()),
                    compensation: s.compensation.map(|c| c.span()),
                    kind: s.kind.map(|k| k.span()),
                    group: s.group.map(|g| g.span()),
                    retry: s.retry.map(|r| r.span()),
                    input: s.input.map(|m| m.span()),
                    compensation_input: s.compensation_input.map(|m| m.span()),
                },
            );
        }
        let (Some(participant), Some(command)) = (s.participant, s.command) else {
            self.err(
                name_span,
                format!(
                    "step `{name}` needs a `participant` and a `command` (or `await` for a signal)"
                ),
            );
            return None;
        };
        // Kinds: at most one pivot; before it compensatable steps, after it retriable ones.
        let kind_span = s
            .kind
            .as_ref()
            .map(|k| k.span())
            .unwrap_or(name_span.clone());
        let kind = match (s.kind.map(|k| k.into_inner()), *pivot) {
            (Some(StepKind::Pivot), Some(first)) => {
                self.err(
                    kind_span.clone(),
                    "a saga has at most one pivot step".into(),
                )
                .hint = Some(format!(
                    "step `{}` is already the pivot",
                    earlier[first].name
                ));
                StepKind::Pivot
            }
            (Some(StepKind::Pivot), None) => {
                *pivot = Some(index);
                StepKind::Pivot
            }
            (Some(StepKind::Compensatable), Some(_)) => {
                self.err(kind_span.clone(), format!("step `{name}` is compensatable but comes after the pivot, which can never be undone")).hint =
                    Some("make it kind = \"retriable\" (retried until it succeeds)".into());
                StepKind::Compensatable
            }
            (Some(StepKind::Retriable), None) => {
                self.err(
                    kind_span.clone(),
                    format!("retriable step `{name}` comes before any pivot"),
                )
                .hint = Some(
                    "retriable steps follow the pivot; mark an earlier step kind = \"pivot\""
                        .into(),
                );
                StepKind::Retriable
            }
            (Some(k), _) => k,
            (None, Some(_)) => StepKind::Retriable,
            (None, None) => StepKind::Compensatable,
        };
        if let Some(c) = &s.compensation
            && kind != StepKind::Compensatable
        {
            {
                let why = if kind == StepKind::Pivot {
                    "a pivot is never undone"
                } else {
                    "it comes after the pivot, which is never undone"
                };
                self.err(
                    c.span(),
                    format!("step `{name}` cannot have a compensation: {why}"),
                )
                .hint = Some("remove the compensation".into());
            }
        }
        // Groups: consecutive members, no pivot inside.
        let group = s.group.map(|g| {
            let span = g.span();
            let g = g.into_inner();
            let previous = earlier.last().and_then(|e| e.group.as_deref());
            if previous != Some(g.as_str()) && closed_groups.contains(&g) {
                self.err(span.clone(), format!("the steps of group `{g}` must be next to each other"));
            }
            if kind == StepKind::Pivot {
                self.err(span, format!("the pivot `{name}` cannot be in parallel group `{g}`")).hint =
                    Some("the pivot must run alone: its outcome decides whether the saga can still be undone".into());
            }
            g
        });
        if let Some(prev) = earlier.last().and_then(|e| e.group.clone())
            && group.as_deref() != Some(prev.as_str())
            && !closed_groups.contains(&prev)
        {
            closed_groups.push(prev);
        }
        let timeout = match s.timeout {
            Some(t) => parse_duration("timeout", t.get_ref()).unwrap_or_else(|m| {
                self.err(t.span(), m);
                DEFAULT_TIMEOUT
            }),
            None => DEFAULT_TIMEOUT,
        };
        let retry = match s.retry {
            Some(r) => {
                let span = r.span();
                r.into_inner()
                    .resolve(&RetryPolicy::default())
                    .unwrap_or_else(|m| {
                        self.err(span, m);
                        RetryPolicy::default()
                    })
            }
            None => RetryPolicy::default(),
        };

        // The catalogue: participant, command, compensation.
        let participant_span = participant.span();
        let participant = participant.into_inner();
        let command_span = command.span();
        let command = command.into_inner();
        let compensation = s.compensation.map(|c| (c.span(), c.into_inner()));
        let specs = self.catalogue.map(|cat| {
            let Some(commands) = cat.participants.get(&participant) else {
                let known: Vec<&str> = cat.participants.keys().map(String::as_str).collect();
                let e = self.err(
                    participant_span.clone(),
                    format!("unknown participant `{participant}`"),
                );
                e.hint = Some(match closest(&participant, known.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("the catalogue lists: {}", known.join(", ")),
                });
                return (None, None);
            };
            let forward = self.offered(
                commands,
                &participant,
                &command,
                command_span.clone(),
                CommandKind::Forward,
            );
            let undo = compensation.as_ref().and_then(|(span, c)| {
                let spec = self.offered(
                    commands,
                    &participant,
                    c,
                    span.clone(),
                    CommandKind::Compensation,
                )?;
                // The compensation must undo this step's command, not another one.
                let wrong = spec.undoes.as_deref().filter(|t| *t != command);
                if let Some(target) = wrong.filter(|_| forward.is_some()) {
                    let e = self.err(
                        span.clone(),
                        format!("`{c}` undoes `{target}`, not this step's `{command}`"),
                    );
                    let undoers: Vec<&str> = commands
                        .iter()
                        .filter(|(_, s)| s.undoes.as_deref() == Some(command.as_str()))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    e.hint = Some(match undoers.as_slice() {
                        [] => format!("the catalogue lists no compensation of `{command}`"),
                        names => format!("`{command}` is undone by {}", names.join(", ")),
                    });
                }
                Some(spec)
            });
            (forward, undo)
        });
        let (forward_spec, undo_spec) = specs.unwrap_or((None, None));

        let input = s
            .input
            .map(|m| self.mapping(m, &name, group.as_deref(), earlier, forward_spec, false));
        let compensation_input = s
            .compensation_input
            .map(|m| self.mapping(m, &name, group.as_deref(), earlier, undo_spec, true));
        // Without a mapping the command gets the saga input merged with earlier outputs:
        // every required field must be among those.
        if let (None, Some(spec)) = (&input, forward_spec) {
            self.available(spec, &command, &name, name_span.clone(), earlier, None);
        }
        if let (None, None, Some(spec)) = (&compensation_input, &input, undo_spec) {
            let undo_name = compensation
                .as_ref()
                .map(|(_, c)| c.clone())
                .unwrap_or_default();
            self.available(
                spec,
                &undo_name,
                &name,
                name_span.clone(),
                earlier,
                forward_spec,
            );
        }
        Some(Step {
            name,
            participant,
            command,
            compensation: compensation.map(|(_, c)| c),
            kind,
            group,
            timeout,
            retry,
            input,
            compensation_input,
            signal: None,
        })
    }

    /// The spec of `command` if `participant` offers it as `kind`; reports it otherwise.
    fn offered<'c>(
        &mut self,
        commands: &'c BTreeMap<String, CommandSpec>,
        participant: &str,
        command: &str,
        span: std::ops::Range<usize>,
        kind: CommandKind,
    ) -> Option<&'c CommandSpec> {
        let what = match kind {
            CommandKind::Forward => "command",
            CommandKind::Compensation => "compensation",
        };
        match commands.get(command) {
            Some(spec) if spec.kind == kind => Some(spec),
            Some(_) => {
                self.err(
                    span,
                    format!("participant `{participant}` does not offer `{command}` as a {what}"),
                );
                None
            }
            None => {
                let offered: Vec<&str> = commands
                    .iter()
                    .filter(|(_, s)| s.kind == kind)
                    .map(|(n, _)| n.as_str())
                    .collect();
                let e = self.err(
                    span,
                    format!("participant `{participant}` has no {what} `{command}`"),
                );
                e.hint = Some(match closest(command, offered.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("it offers: {}", offered.join(", ")),
                });
                None
            }
        }
    }
}
