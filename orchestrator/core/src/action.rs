//! Actions: the effects that new events ask the runtime to perform. Data, not calls.

use crate::event::{Event, Occurred};
use crate::state::{SagaState, Status};
use saga_protocol::CommandEnvelope;
use serde::Serialize;

/// An effect for the runtime to perform after the events that decided it are stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action")]
pub enum Action {
    /// Publish a step's command.
    SendCommand(CommandEnvelope),
    /// Publish a step's compensation.
    SendCompensation(CommandEnvelope),
    /// The saga reached a terminal status.
    Finish { status: Status },
}

/// The actions that `events` (just decided, already folded into `state`) call for.
pub fn actions(state: &SagaState, events: &[Occurred]) -> Vec<Action> {
    events
        .iter()
        .filter_map(|occurred| match &occurred.event {
            Event::StepStarted { .. } => state.envelope(occurred).map(Action::SendCommand),
            Event::CompensationStarted { .. } => {
                state.envelope(occurred).map(Action::SendCompensation)
            }
            Event::SagaCompleted => Some(Action::Finish {
                status: Status::Completed,
            }),
            Event::SagaCompensated => Some(Action::Finish {
                status: Status::Compensated,
            }),
            Event::SagaStuck { .. } => Some(Action::Finish {
                status: Status::Stuck,
            }),
            _ => None,
        })
        .collect()
}
