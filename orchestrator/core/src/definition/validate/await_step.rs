//! Await steps: a step that waits for a signal instead of sending a command, checked for the
//! keys a command step has and it must not, its timeout, and its signal's fields.

use super::{Checker, NAME_HINT, check_name};
use crate::definition::{DEFAULT_TIMEOUT, Signal, Step, StepKind};
use crate::policy::{RetryPolicy, parse_duration};
use std::collections::BTreeMap;

/// The spans of the command-step keys an await step was given.
pub(super) struct Others {
    pub participant: Option<std::ops::Range<usize>>,
    pub command: Option<std::ops::Range<usize>>,
    pub compensation: Option<std::ops::Range<usize>>,
    pub kind: Option<std::ops::Range<usize>>,
    pub group: Option<std::ops::Range<usize>>,
    pub retry: Option<std::ops::Range<usize>>,
    pub input: Option<std::ops::Range<usize>>,
    pub compensation_input: Option<std::ops::Range<usize>>,
}

impl Others {
    fn given(self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        [
            ("participant", self.participant),
            ("command", self.command),
            ("compensation", self.compensation),
            ("kind", self.kind),
            ("group", self.group),
            ("retry", self.retry),
            ("input", self.input),
            ("compensation_input", self.compensation_input),
        ]
        .into_iter()
        .filter_map(|(key, span)| span.map(|s| (key, s)))
        .collect()
    }
}

impl Checker<'_, '_> {
    /// An await step: it waits up to its `timeout` for a signal whose payload has the fields
    /// of `[step.signal]`, and has none of a command step's keys.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn await_step(
        &mut self,
        fields: Option<BTreeMap<String, toml::Spanned<crate::definition::types::RawField>>>,
        timeout: Option<toml::Spanned<String>>,
        signal: toml::Spanned<String>,
        name: String,
        earlier: &[Step],
        pivot: Option<usize>,
        others: Others,
    ) -> Option<Step> {
        let signal_span = signal.span();
        let signal = signal.into_inner();
        if let Err(m) = check_name("signal", &signal) {
            self.err(signal_span.clone(), m).hint = Some(NAME_HINT.into());
        }
        if earlier
            .iter()
            .any(|e| e.signal.as_ref().is_some_and(|g| g.name == signal))
        {
            self.err(
                signal_span.clone(),
                format!("two steps await signal `{signal}`: a signal must name one step"),
            );
        }
        for (key, span) in others.given() {
            self.err(
                span,
                format!("await step `{name}` waits for a signal: it has no `{key}`"),
            )
            .hint = Some("remove it, or make the step a command step without `await`".into());
        }
        let timeout = match timeout {
            Some(t) => parse_duration("timeout", t.get_ref()).unwrap_or_else(|m| {
                self.err(t.span(), m);
                DEFAULT_TIMEOUT
            }),
            None => {
                self.err(
                    signal_span,
                    format!(
                        "await step `{name}` needs a `timeout`: how long to wait for `{signal}`"
                    ),
                )
                .hint = Some("e.g. timeout = \"24h\"; when it passes, the saga compensates".into());
                DEFAULT_TIMEOUT
            }
        };
        let mut resolved = BTreeMap::new();
        for (field, raw) in fields.unwrap_or_default() {
            let span = raw.span();
            match raw.into_inner().resolve() {
                Ok(f) => {
                    resolved.insert(field, f);
                }
                Err(m) => {
                    self.err(span, format!("signal field `{field}`: {m}"));
                }
            }
        }
        Some(Step {
            name,
            participant: String::new(),
            command: String::new(),
            compensation: None,
            // Nothing to undo: before the pivot it is undone by doing nothing; after it,
            // like every step there, it must end well or wait for an operator.
            kind: if pivot.is_some() {
                StepKind::Retriable
            } else {
                StepKind::Compensatable
            },
            group: None,
            timeout,
            retry: RetryPolicy::default(),
            input: None,
            compensation_input: None,
            signal: Some(Signal {
                name: signal,
                fields: resolved,
            }),
        })
    }
}
