//! The decision function: given a definition, the current state, an input and the time,
//! which events happen. No I/O, no clock reads, no ids minted: everything comes in.

use crate::definition::{Definition, StepKind};
use crate::event::{Event, Occurred};
use crate::state::{SagaState, Status, StepStatus, evolve};
use saga_protocol::{CommandKind, MessageId, Outcome, ReplyEnvelope, Timestamp};

/// Something from outside that may move a saga.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start the saga with this input (the saga id is the state's).
    Start { input: serde_json::Value },
    /// A participant answered a command or a compensation.
    Reply(ReplyEnvelope),
}

/// Why an input was refused. Not an infrastructure failure: nothing is retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("the saga has already started")]
    AlreadyStarted,
    #[error("the saga has not started")]
    NotStarted,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the reply is for saga {0}, not this one")]
    WrongSaga(uuid::Uuid),
    #[error("the reply names step `{0}`, which this saga has not started")]
    UnknownStep(String),
}

/// Decides the events that `input` causes. An empty list means the input changes nothing
/// (a duplicate reply, or a reply to a command that was already answered).
pub fn decide(
    def: &Definition,
    state: &SagaState,
    input: Input,
    now: Timestamp,
) -> Result<Vec<Occurred>, Rejection> {
    let mut d = Decision {
        def,
        state: state.clone(),
        events: Vec::new(),
    };
    match input {
        Input::Start { input } => {
            if state.status != Status::New {
                return Err(Rejection::AlreadyStarted);
            }
            def.check_input(&input).map_err(Rejection::InvalidInput)?;
            d.push(
                now,
                Event::SagaStarted {
                    name: def.name.clone(),
                    definition_version: def.version,
                    input,
                },
            );
            if let Some(first) = def.steps.first() {
                d.start_step(&first.name, now);
            }
        }
        Input::Reply(reply) => d.reply(reply, now)?,
    }
    Ok(d.events)
}

/// A decision in progress: events so far and the state they lead to.
struct Decision<'a> {
    def: &'a Definition,
    state: SagaState,
    events: Vec<Occurred>,
}

impl Decision<'_> {
    fn push(&mut self, at: Timestamp, event: Event) {
        let occurred = Occurred { at, event };
        let blank = SagaState::new(self.state.saga_id);
        self.state = evolve(std::mem::replace(&mut self.state, blank), &occurred);
        self.events.push(occurred);
    }

    fn reply(&mut self, reply: ReplyEnvelope, now: Timestamp) -> Result<(), Rejection> {
        if self.state.status == Status::New {
            return Err(Rejection::NotStarted);
        }
        if reply.saga_id != self.state.saga_id {
            return Err(Rejection::WrongSaga(reply.saga_id));
        }
        if self.state.step(&reply.step).is_none() {
            return Err(Rejection::UnknownStep(reply.step));
        }
        if !self.state.is_pending(&reply.step, &reply.command_id) {
            // Already answered: a redelivery or a duplicate. Its effect was recorded once.
            return Ok(());
        }
        let at = reply.occurred_at;
        let (step, attempt) = (reply.step, reply.attempt);
        match (reply.kind, reply.outcome) {
            (CommandKind::Forward, Outcome::Succeeded { output }) => {
                self.push(
                    at,
                    Event::StepSucceeded {
                        step: step.clone(),
                        attempt,
                        output,
                    },
                );
                match self.def.next_step(&step) {
                    Some(next) => {
                        let next = next.name.clone();
                        self.start_step(&next, now);
                    }
                    None => self.push(now, Event::SagaCompleted),
                }
            }
            (CommandKind::Forward, Outcome::Rejected { reason }) => {
                let kind = self.def.step(&step).map(|s| s.kind);
                self.push(
                    at,
                    Event::StepRejected {
                        step: step.clone(),
                        attempt,
                        reason: reason.clone(),
                    },
                );
                if kind == Some(StepKind::Retriable) {
                    let reason = format!("step `{step}` after the pivot was rejected: {reason}");
                    self.push(now, Event::SagaStuck { reason });
                } else {
                    self.push(now, Event::SagaFailed { step, reason });
                    self.compensate_next(now);
                }
            }
            (CommandKind::Compensation, Outcome::Succeeded { .. }) => {
                self.push(at, Event::StepCompensated { step, attempt });
                self.compensate_next(now);
            }
            (CommandKind::Compensation, Outcome::Rejected { reason }) => {
                self.push(
                    at,
                    Event::SagaStuck {
                        reason: format!("compensation of `{step}` was refused: {reason}"),
                    },
                );
            }
        }
        Ok(())
    }

    fn start_step(&mut self, name: &str, now: Timestamp) {
        let Some(step) = self.def.step(name) else {
            return;
        };
        let attempt = 1;
        let event = Event::StepStarted {
            step: step.name.clone(),
            attempt,
            command_id: MessageId::command(
                self.state.saga_id,
                &step.name,
                attempt,
                CommandKind::Forward,
            ),
            participant: step.participant.clone(),
            command: step.command.clone(),
            payload: self.state.arguments(),
        };
        self.push(now, event);
    }

    /// Starts the compensation of the latest succeeded step that has one, or finishes the
    /// saga as compensated when none is left. Steps are undone in reverse order.
    fn compensate_next(&mut self, now: Timestamp) {
        let next = self.state.steps.iter().rev().find_map(|s| {
            let def = self.def.step(&s.name)?;
            let command = def.compensation.clone()?;
            (s.status == StepStatus::Succeeded).then(|| (def.clone(), command))
        });
        match next {
            Some((step, command)) => {
                let attempt = 1;
                let event = Event::CompensationStarted {
                    step: step.name.clone(),
                    attempt,
                    command_id: MessageId::command(
                        self.state.saga_id,
                        &step.name,
                        attempt,
                        CommandKind::Compensation,
                    ),
                    participant: step.participant.clone(),
                    command,
                    payload: self.state.arguments(),
                };
                self.push(now, event);
            }
            None => self.push(now, Event::SagaCompensated),
        }
    }
}
