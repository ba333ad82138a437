//! Actions: the effects that new events ask the runtime to perform. Data, not calls.

use crate::event::{Event, Occurred};
use crate::state::{SagaState, Status};
use saga_protocol::{CommandEnvelope, Timestamp};
use serde::Serialize;

/// An effect for the runtime to perform after the events that decided it are stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action")]
pub enum Action {
    /// Publish a step's command.
    SendCommand(CommandEnvelope),
    /// Publish a step's compensation.
    SendCompensation(CommandEnvelope),
    /// Feed the saga an `Input::Tick` at `at` (a timeout, a retry or the deadline). Timers
    /// are recorded in the events, so after a restart they are armed again from the log.
    ScheduleTimer { at: Timestamp },
    /// The saga reached a terminal status.
    Finish { status: Status },
}

/// The actions that `events` (just decided, already folded into `state`) call for.
pub fn actions(state: &SagaState, events: &[Occurred]) -> Vec<Action> {
    let mut out = Vec::new();
    let mut timers = Vec::new();
    for occurred in events {
        match &occurred.event {
            Event::StepStarted { timeout_at, .. } => {
                out.extend(state.envelope(occurred).map(Action::SendCommand));
                timers.extend(timeout_at.map(|at| Action::ScheduleTimer { at }));
            }
            Event::CompensationStarted { timeout_at, .. } => {
                out.extend(state.envelope(occurred).map(Action::SendCompensation));
                timers.extend(timeout_at.map(|at| Action::ScheduleTimer { at }));
            }
            Event::SagaStarted { deadline_at, .. } => {
                timers.extend(deadline_at.map(|at| Action::ScheduleTimer { at }));
            }
            Event::RetryScheduled { retry_at, .. } => {
                timers.push(Action::ScheduleTimer { at: *retry_at })
            }
            Event::SagaCompleted => out.push(Action::Finish {
                status: Status::Completed,
            }),
            Event::SagaCompensated => out.push(Action::Finish {
                status: Status::Compensated,
            }),
            Event::SagaStuck { .. } => out.push(Action::Finish {
                status: Status::Stuck,
            }),
            Event::SagaAborted { .. } => out.push(Action::Finish {
                status: Status::Aborted,
            }),
            _ => {}
        }
    }
    // Commands first, then the timers that watch them; a saga that is done waits for nothing.
    if Status::ACTIVE.contains(&state.status) {
        out.extend(timers);
    }
    out
}
