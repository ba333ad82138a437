//! The guarantees, checked on every event the core decides and on the world at the end,
//! from the rules of the design rather than from the core's own code.

use super::world::World;
use crate::definition::{Definition, StepKind};
use crate::event::{Event, Occurred};
use crate::{SagaState, Status, StepStatus};
use std::fmt;

/// A guarantee of the design that a schedule can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guarantee {
    /// Every saga ends Completed, Compensated, or Stuck with a reason.
    Ends,
    /// What may have applied is compensated newest first, a unit only when the later ones
    /// are done.
    ReverseOrder,
    /// Nothing is compensated once the pivot has been sent.
    Pivot,
    /// No effect is applied twice.
    Once,
    /// A compensated saga leaves no effect, a completed one every effect once.
    AllOrNothing,
    /// A saga past its deadline does not run forward before its pivot.
    Deadline,
    /// Every reply is taken, and every command is one the catalogue accepts.
    Accepted,
}

impl Guarantee {
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::Ends => "ends",
            Guarantee::ReverseOrder => "reverse-order",
            Guarantee::Pivot => "pivot",
            Guarantee::Once => "once",
            Guarantee::AllOrNothing => "all-or-nothing",
            Guarantee::Deadline => "deadline",
            Guarantee::Accepted => "accepted",
        }
    }
}

/// A guarantee broken, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub guarantee: Guarantee,
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(guarantee: Guarantee, detail: String) -> Self {
        Violation { guarantee, detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.guarantee.name(), self.detail)
    }
}

/// Checks one event about to be recorded against the state before it.
pub(crate) fn event(
    def: &Definition,
    before: &SagaState,
    occurred: &Occurred,
    violations: &mut Vec<Violation>,
) {
    match &occurred.event {
        Event::CompensationStarted { step, .. } => {
            if let Some(pivot) = pivot_sent(def, before) {
                violations.push(Violation::new(
                    Guarantee::Pivot,
                    format!(
                        "the compensation of `{step}` started after the pivot `{pivot}` was sent"
                    ),
                ));
            }
            let kind = def.step(step).map(|s| s.kind);
            if kind.is_some_and(|k| k != StepKind::Compensatable) {
                violations.push(Violation::new(
                    Guarantee::Pivot,
                    format!("`{step}` is a {kind:?} step, and its compensation started"),
                ));
            }
            let unit = unit_index(def, step);
            for later in &before.steps {
                let undoable = def
                    .step(&later.name)
                    .is_some_and(|s| s.compensation.is_some());
                let open =
                    before.may_have_applied(later) || later.status == StepStatus::Compensating;
                if undoable && open && unit_index(def, &later.name) > unit {
                    violations.push(Violation::new(
                        Guarantee::ReverseOrder,
                        format!(
                            "the compensation of `{step}` started while `{}`, which comes after it, was {} and not compensated",
                            later.name,
                            status_name(later.status)
                        ),
                    ));
                }
            }
        }
        Event::StepStarted { step, .. } => {
            let past = before.deadline_at.is_some_and(|d| d <= occurred.at);
            if past && pivot_sent(def, before).is_none() {
                violations.push(Violation::new(
                    Guarantee::Deadline,
                    format!("step `{step}` started after the saga's deadline, before any pivot"),
                ));
            }
        }
        _ => {}
    }
}

/// After a tick past the deadline, a saga whose pivot was not sent no longer runs forward.
pub(crate) fn after_tick(world: &mut World<'_>) {
    let state = &world.state;
    let past = state.deadline_at.is_some_and(|d| d <= world.now);
    if past && state.status == Status::Running && pivot_sent(world.def, state).is_none() {
        world.violations.push(Violation::new(
            Guarantee::Deadline,
            "the deadline passed and the saga still runs forward, with no pivot sent".into(),
        ));
    }
}

/// The pivot, once it has been sent and not refused.
fn pivot_sent<'s>(def: &Definition, state: &'s SagaState) -> Option<&'s str> {
    state
        .steps
        .iter()
        .find(|s| is_pivot(def, &s.name) && s.status != StepStatus::Rejected)
        .map(|s| s.name.as_str())
}

fn is_pivot(def: &Definition, step: &str) -> bool {
    def.step(step).is_some_and(|s| s.kind == StepKind::Pivot)
}

/// The position of the first step of `step`'s unit: steps of one parallel group share it.
fn unit_index(def: &Definition, step: &str) -> usize {
    def.unit_of(step)
        .first()
        .and_then(|first| def.index(&first.name))
        .unwrap_or(usize::MAX)
}

fn status_name(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Unknown => "of unknown outcome",
        StepStatus::Retrying => "retrying",
        StepStatus::Compensating => "being compensated",
        StepStatus::Rejected => "refused while an earlier attempt may have applied",
        _ => "open",
    }
}

/// The guarantees of a world with nothing left to happen.
pub(crate) fn end(world: &mut World<'_>) {
    let mut found = Vec::new();
    let state = &world.state;
    match state.status {
        Status::Completed | Status::Compensated | Status::Aborted => {}
        Status::Stuck if state.reason.as_deref().is_some_and(|r| !r.is_empty()) => {}
        Status::Stuck => found.push(Violation::new(
            Guarantee::Ends,
            "the saga is stuck with no reason".into(),
        )),
        other => found.push(Violation::new(
            Guarantee::Ends,
            format!(
                "the saga is {} with nothing in flight and no timer: stranded",
                other.as_str()
            ),
        )),
    }
    let effects = &world.participants;
    for (step, keys) in &effects.keys {
        let applied: Vec<&String> = keys
            .iter()
            .filter(|k| effects.effects.get(*k).is_some_and(|e| e.applied > 0))
            .collect();
        if applied.len() > 1 {
            found.push(Violation::new(
                Guarantee::Once,
                format!(
                    "the effect of `{step}` was applied under {} effect keys",
                    applied.len()
                ),
            ));
        }
    }
    for effect in effects.effects.values() {
        if effect.applied > 1 || effect.undone > 1 {
            found.push(Violation::new(
                Guarantee::Once,
                format!(
                    "the effect of `{}` was applied {} times and undone {} times",
                    effect.step, effect.applied, effect.undone
                ),
            ));
        }
    }
    match state.status {
        Status::Compensated => {
            for effect in effects.effects.values() {
                if effect.applied > effect.undone {
                    found.push(Violation::new(
                        Guarantee::AllOrNothing,
                        format!(
                            "the saga is compensated, and the effect of `{}` is still applied",
                            effect.step
                        ),
                    ));
                }
            }
        }
        Status::Completed => {
            for step in world.def.steps.iter().filter(|s| s.signal.is_none()) {
                let key = format!("{}.{}", state.saga_id, step.name);
                let effect = effects.effects.get(&key);
                if !effect.is_some_and(|e| e.applied == 1 && e.undone == 0) {
                    found.push(Violation::new(
                        Guarantee::AllOrNothing,
                        format!(
                            "the saga is completed, and the effect of `{}` is not applied once",
                            step.name
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    world.violations.extend(found);
}

/// An event in a line: its type and the step it is about.
pub(crate) fn describe(event: &Event) -> String {
    let step = match event {
        Event::StepStarted { step, attempt, .. }
        | Event::CompensationStarted { step, attempt, .. }
        | Event::StepSucceeded { step, attempt, .. }
        | Event::StepRejected { step, attempt, .. }
        | Event::StepCompensated { step, attempt }
        | Event::CommandTimedOut { step, attempt, .. }
        | Event::CommandFailed { step, attempt, .. }
        | Event::LateReplyRecorded { step, attempt, .. } => format!(" `{step}` attempt {attempt}"),
        Event::RetryScheduled { step, attempt, .. } => format!(" `{step}` attempt {attempt}"),
        Event::SagaFailed { step, .. }
        | Event::SignalAwaited { step, .. }
        | Event::SignalReceived { step, .. }
        | Event::SignalTimedOut { step, .. } => format!(" `{step}`"),
        Event::SagaStuck { reason, .. } => format!(": {reason}"),
        _ => String::new(),
    };
    format!("{}{step}", event.type_name())
}
