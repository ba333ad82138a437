//! The decision function: given a definition, the current state, an input and the time,
//! which events happen. No I/O, no clock reads, no ids minted: everything comes in.

mod forward;
mod time;
mod undo;

use crate::definition::{Definition, StepKind};
use crate::event::{Event, Occurred};
use crate::evolve::evolve;
use crate::state::{SagaState, Status, StepStatus};
use saga_protocol::{CommandKind, Outcome, ReplyEnvelope, Timestamp};

/// Something from outside that may move a saga.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start the saga with this input (the saga id is the state's). `trace_context` is the
    /// saga's W3C `traceparent`, minted by the runtime when tracing is on: the core only
    /// records it in `SagaStarted`, so the saga's trace survives restarts.
    Start {
        input: serde_json::Value,
        trace_context: Option<String>,
    },
    /// A participant answered a command or a compensation.
    Reply(ReplyEnvelope),
    /// Time passed: fire whatever timeout, retry or deadline is due at `now`.
    Tick,
    /// A signal came for the saga (`POST /v1/sagas/{id}/signals/{name}`), with its payload.
    Signal {
        name: String,
        payload: serde_json::Value,
    },
    /// An operator acted on the saga.
    Operator(OperatorAction),
}

/// An operator's action, recorded with who did it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorAction {
    pub command: OperatorCommand,
    pub by: crate::Operator,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Send the command a Stuck saga is stuck on again.
    Retry,
    /// Mark the stuck command as resolved by hand and go on.
    Skip,
    /// Stop a stuck saga for good, leaving what it did as it is.
    Abort,
    /// Undo a running saga before its pivot: compensate what completed or may have.
    Cancel,
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
    #[error(
        "the saga is {0}, not stuck: only a stuck saga can be retried, skipped or aborted (cancel a running one to undo it)"
    )]
    NotStuck(&'static str),
    #[error(
        "the saga is {0}: only a running saga can be cancelled (a stuck one is retried, skipped or aborted)"
    )]
    NotRunning(&'static str),
    #[error(
        "the saga has sent its pivot step `{0}`: what it did from there on cannot be undone, so it can only finish forward"
    )]
    PastPivot(String),
    #[error("no step of this saga awaits a signal named `{0}`")]
    UnknownSignal(String),
    #[error("{0}")]
    InvalidSignal(String),
    #[error(
        "step `{step}` that awaits `{signal}` has not begun waiting yet: send the signal again once the saga waits for it (its status shows the step waiting)"
    )]
    NotAwaiting { signal: String, step: String },
    #[error("the saga has already ended as {0}")]
    Finished(&'static str),
    #[error(
        "the saga is stuck because its definition was missing, not on a step: retry it once the definition is loaded again, or abort it"
    )]
    Stalled,
}

/// The saga cannot go on at all, for `reason` (its definition is neither loaded nor stored):
/// it becomes Stuck, visibly, instead of staying `running` with every input refused. Decided
/// without a definition, since that is what is missing. An operator's `Retry` (once the
/// definition is back) resumes the saga the way it was going, sending the next attempt of
/// every command that was in flight. An empty list when it is stuck already.
pub fn stall(
    state: &SagaState,
    reason: String,
    now: Timestamp,
) -> Result<Vec<Occurred>, Rejection> {
    let kind = match state.status {
        Status::New => return Err(Rejection::NotStarted),
        Status::Running => CommandKind::Forward,
        Status::Compensating => CommandKind::Compensation,
        Status::Stuck => return Ok(Vec::new()),
        ended => return Err(Rejection::Finished(ended.as_str())),
    };
    Ok(vec![Occurred {
        at: now,
        event: Event::SagaStuck {
            reason,
            step: None,
            kind: Some(kind),
        },
    }])
}

/// Decides the events that `input` causes at time `now`. An empty list means the input
/// changes nothing (a duplicate reply, or a tick with nothing due).
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
        now,
    };
    match input {
        Input::Start {
            input,
            trace_context,
        } => {
            if state.status != Status::New {
                return Err(Rejection::AlreadyStarted);
            }
            let input = def.check_input(&input).map_err(Rejection::InvalidInput)?;
            d.push(
                now,
                Event::SagaStarted {
                    name: def.name.clone(),
                    definition_version: def.version,
                    definition_hash: Some(def.hash.clone()),
                    input,
                    deadline_at: def.deadline.map(|dl| now.plus(dl)),
                    trace_context,
                },
            );
            if let Some(first) = def.steps.first() {
                d.start_unit(&first.name.clone());
            }
        }
        Input::Reply(reply) => d.reply(reply)?,
        Input::Tick => d.tick(),
        Input::Operator(action) => d.operator(action)?,
        Input::Signal { name, payload } => d.signal(name, payload)?,
    }
    Ok(d.events)
}

/// A decision in progress: events so far and the state they lead to.
struct Decision<'a> {
    def: &'a Definition,
    state: SagaState,
    events: Vec<Occurred>,
    now: Timestamp,
}

impl Decision<'_> {
    fn push(&mut self, at: Timestamp, event: Event) {
        let occurred = Occurred { at, event };
        let blank = SagaState::new(self.state.saga_id);
        self.state = evolve(std::mem::replace(&mut self.state, blank), &occurred);
        self.events.push(occurred);
    }

    fn reply(&mut self, reply: ReplyEnvelope) -> Result<(), Rejection> {
        if self.state.status == Status::New {
            return Err(Rejection::NotStarted);
        }
        if reply.saga_id != self.state.saga_id {
            return Err(Rejection::WrongSaga(reply.saga_id));
        }
        if self.state.step(&reply.step).is_none() {
            return Err(Rejection::UnknownStep(reply.step));
        }
        if self.state.answered.contains(&reply.command_id) {
            // A redelivery or a duplicate: its effect was recorded once already.
            return Ok(());
        }
        let at = reply.occurred_at;
        let (step, attempt, kind) = (reply.step.clone(), reply.attempt, reply.kind);
        if !self.state.is_pending(&step, &reply.command_id) {
            self.late(reply);
            return Ok(());
        }
        match (kind, reply.outcome) {
            (CommandKind::Forward, Outcome::Succeeded { output }) => {
                self.push(
                    at,
                    Event::StepSucceeded {
                        step: step.clone(),
                        attempt,
                        output,
                    },
                );
                match self.state.status {
                    Status::Running => self.forward_after(&step),
                    // A parallel member that answered after another member failed.
                    Status::Compensating => self.compensate_next(),
                    _ => {}
                }
            }
            (CommandKind::Forward, Outcome::Rejected { reason }) => {
                self.push(
                    at,
                    Event::StepRejected {
                        step: step.clone(),
                        attempt,
                        reason: reason.clone(),
                    },
                );
                if self.state.status == Status::Compensating {
                    self.compensate_next();
                } else if self.kind_of(&step) == StepKind::Retriable {
                    self.stuck(
                        format!("step `{step}` after the pivot was rejected: {reason}"),
                        &step,
                        kind,
                    );
                } else {
                    self.fail(step, reason);
                }
            }
            (CommandKind::Compensation, Outcome::Succeeded { .. }) => {
                self.push(at, Event::StepCompensated { step, attempt });
                self.compensate_next();
            }
            (CommandKind::Compensation, Outcome::Rejected { reason }) => {
                let reason = format!("compensation of `{step}` was refused: {reason}");
                self.stuck(reason, &step, kind);
            }
            (kind, Outcome::Failed { reason }) => {
                self.push(
                    at,
                    Event::CommandFailed {
                        step: step.clone(),
                        attempt,
                        kind,
                        reason: reason.clone(),
                    },
                );
                self.retry_or_give_up(&step, kind, attempt, reason);
            }
        }
        Ok(())
    }

    /// A reply nobody waits for any more: recorded with its time, it never moves the saga.
    /// Its effect, if any, is covered already: a step that timed out for good is compensated
    /// (its compensation shares the effect key), and a retried attempt shares its effect.
    /// A stuck saga stays stuck until an operator acts, even if the late reply is a success
    /// of the compensation it is stuck on: the operator sees it in the history and retries.
    fn late(&mut self, reply: ReplyEnvelope) {
        self.push(
            reply.occurred_at,
            Event::LateReplyRecorded {
                step: reply.step,
                attempt: reply.attempt,
                kind: reply.kind,
                command_id: reply.command_id,
                outcome: reply.outcome,
            },
        );
    }

    fn kind_of(&self, step: &str) -> StepKind {
        self.def
            .step(step)
            .map_or(StepKind::Compensatable, |s| s.kind)
    }

    /// Whether the pivot has been sent and not refused. From then on its outcome must be
    /// learned, never guessed: a deadline cannot undo the saga, since the pivot may have
    /// applied and nothing undoes a pivot.
    fn pivot_sent(&self) -> bool {
        self.sent_pivot().is_some()
    }

    /// The pivot step, once it has been sent and not refused.
    fn sent_pivot(&self) -> Option<&str> {
        self.state
            .steps
            .iter()
            .find(|s| self.kind_of(&s.name) == StepKind::Pivot && s.status != StepStatus::Rejected)
            .map(|s| s.name.as_str())
    }
}

/// The attempt number that follows `step`'s last attempt of `kind`.
fn next_attempt(step: &crate::state::StepState, kind: CommandKind) -> u32 {
    match kind {
        CommandKind::Forward => step.attempt + 1,
        CommandKind::Compensation => step.compensation_attempt + 1,
    }
}
