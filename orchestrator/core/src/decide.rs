//! The decision function: given a definition, the current state, an input and the time,
//! which events happen. No I/O, no clock reads, no ids minted: everything comes in.

use crate::definition::{Definition, StepKind};
use crate::event::{Event, Occurred};
use crate::policy::RetryPolicy;
use crate::state::{SagaState, Status, StepStatus, evolve};
use saga_protocol::{CommandKind, MessageId, Outcome, ReplyEnvelope, Timestamp};

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
    /// An operator acted on the saga.
    Operator(OperatorAction),
}

/// An operator's action, recorded with who did it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorAction {
    pub command: OperatorCommand,
    pub by: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Send the command a Stuck saga is stuck on again.
    Retry,
    /// Mark the stuck command as resolved by hand and go on.
    Skip,
    /// Stop the saga for good.
    Abort,
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
    #[error("the saga is {0}, not stuck: only a stuck saga can be retried or skipped")]
    NotStuck(&'static str),
    #[error("the saga has already ended as {0}")]
    Finished(&'static str),
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
            def.check_input(&input).map_err(Rejection::InvalidInput)?;
            d.push(
                now,
                Event::SagaStarted {
                    name: def.name.clone(),
                    definition_version: def.version,
                    input,
                    deadline_at: def.deadline.map(|dl| now.plus(dl)),
                    trace_context,
                },
            );
            if let Some(first) = def.steps.first() {
                d.send(&first.name.clone(), CommandKind::Forward, 1);
            }
        }
        Input::Reply(reply) => d.reply(reply)?,
        Input::Tick => d.tick(),
        Input::Operator(action) => d.operator(action)?,
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
                if self.state.status == Status::Running {
                    self.forward_after(&step);
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
                if self.kind_of(&step) == StepKind::Retriable {
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

    fn tick(&mut self) {
        let now = self.now;
        if self.state.status.is_terminal() || self.state.status == Status::New {
            return;
        }
        let past_deadline = self.state.deadline_at.is_some_and(|d| d <= now);
        if self.state.status == Status::Running && past_deadline && !self.pivot_sent() {
            let running = self.state.steps.iter().find_map(|s| {
                s.pending
                    .as_ref()
                    .map(|p| (s.name.clone(), s.attempt, p.kind))
            });
            if let Some((step, attempt, kind)) = running {
                self.push(
                    now,
                    Event::CommandTimedOut {
                        step,
                        attempt,
                        kind,
                    },
                );
            }
            let step = self
                .state
                .steps
                .last()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            self.fail(step, "the saga's deadline passed".into());
            return;
        }
        let due: Vec<_> = self
            .state
            .steps
            .iter()
            .map(|s| {
                let timed_out = s
                    .pending
                    .as_ref()
                    .filter(|_| s.timeout_at.is_some_and(|t| t <= now));
                let retry = s
                    .retry_kind
                    .filter(|_| s.retry_at.is_some_and(|t| t <= now));
                (
                    s.name.clone(),
                    timed_out.map(|p| (p.kind, p.attempt)),
                    retry.map(|k| (k, next_attempt(s, k))),
                )
            })
            .collect();
        for (step, timed_out, retry) in due {
            if let Some((kind, attempt)) = timed_out {
                self.push(
                    now,
                    Event::CommandTimedOut {
                        step: step.clone(),
                        attempt,
                        kind,
                    },
                );
                let timeout = self.def.step(&step).map(|s| s.timeout).unwrap_or_default();
                let reason = format!("no reply within {}", humantime::format_duration(timeout));
                self.retry_or_give_up(&step, kind, attempt, reason);
            } else if let Some((kind, attempt)) = retry {
                self.send(&step, kind, attempt);
            }
        }
    }

    fn operator(&mut self, action: OperatorAction) -> Result<(), Rejection> {
        let status = self.state.status;
        let now = self.now;
        let OperatorAction {
            command,
            by,
            reason,
        } = action;
        match command {
            OperatorCommand::Abort => {
                if status.is_final() || status == Status::New {
                    return Err(Rejection::Finished(status.as_str()));
                }
                self.push(now, Event::SagaAborted { by, reason });
            }
            OperatorCommand::Retry | OperatorCommand::Skip => {
                let Some((step, kind)) = self
                    .state
                    .stuck_on
                    .clone()
                    .filter(|_| status == Status::Stuck)
                else {
                    return Err(Rejection::NotStuck(status.as_str()));
                };
                if command == OperatorCommand::Retry {
                    self.push(now, Event::OperatorRetried { by, reason });
                    let attempt = self.state.step(&step).map_or(1, |s| next_attempt(s, kind));
                    self.send(&step, kind, attempt);
                } else {
                    self.push(
                        now,
                        Event::StepSkipped {
                            step: step.clone(),
                            kind,
                            by,
                            reason,
                        },
                    );
                    match kind {
                        CommandKind::Forward => self.forward_after(&step),
                        CommandKind::Compensation => self.compensate_next(),
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends attempt `attempt` of `step`'s command or compensation.
    fn send(&mut self, name: &str, kind: CommandKind, attempt: u32) {
        let Some(step) = self.def.step(name) else {
            return;
        };
        let command = match kind {
            CommandKind::Forward => step.command.clone(),
            CommandKind::Compensation => match &step.compensation {
                Some(c) => c.clone(),
                None => return,
            },
        };
        let command_id = MessageId::command(self.state.saga_id, name, attempt, kind);
        let (step_name, participant) = (step.name.clone(), step.participant.clone());
        let timeout_at = Some(self.now.plus(step.timeout));
        let payload = self.state.arguments();
        let event = match kind {
            CommandKind::Forward => Event::StepStarted {
                step: step_name,
                attempt,
                command_id,
                participant,
                command,
                payload,
                timeout_at,
            },
            CommandKind::Compensation => Event::CompensationStarted {
                step: step_name,
                attempt,
                command_id,
                participant,
                command,
                payload,
                timeout_at,
            },
        };
        self.push(self.now, event);
    }

    /// After `step` succeeded or was skipped: start the next step, or complete.
    fn forward_after(&mut self, step: &str) {
        match self.def.next_step(step) {
            Some(next) => {
                let next = next.name.clone();
                self.send(&next, CommandKind::Forward, 1);
            }
            None => self.push(self.now, Event::SagaCompleted),
        }
    }

    /// After a timeout or a transient failure of attempt `attempt`: schedule the next attempt
    /// with backoff, or give up. A pivot and the steps after it never give up: their outcome
    /// must become known, because nothing can undo them.
    fn retry_or_give_up(&mut self, step: &str, kind: CommandKind, attempt: u32, reason: String) {
        let (policy, unlimited) = match kind {
            CommandKind::Forward => (
                self.def
                    .step(step)
                    .map(|s| s.retry.clone())
                    .unwrap_or_default(),
                self.kind_of(step) != StepKind::Compensatable,
            ),
            CommandKind::Compensation => (self.def.compensation_retry.clone(), false),
        };
        let next = attempt + 1;
        if unlimited || policy.allows(next) {
            let key = RetryPolicy::jitter_key(&self.state.saga_id, step, attempt);
            let retry_at = self.now.plus(policy.backoff(attempt, key));
            self.push(
                self.now,
                Event::RetryScheduled {
                    step: step.to_string(),
                    kind,
                    attempt: next,
                    retry_at,
                    reason,
                },
            );
            return;
        }
        let why = format!("gave up after {attempt} attempts: {reason}");
        match kind {
            CommandKind::Forward => self.fail(step.to_string(), why),
            CommandKind::Compensation => {
                self.stuck(format!("compensation of `{step}` {why}"), step, kind);
            }
        }
    }

    /// The forward path failed: compensate every step that may have applied.
    fn fail(&mut self, step: String, reason: String) {
        self.push(self.now, Event::SagaFailed { step, reason });
        self.compensate_next();
    }

    fn stuck(&mut self, reason: String, step: &str, kind: CommandKind) {
        self.push(
            self.now,
            Event::SagaStuck {
                reason,
                step: Some(step.to_string()),
                kind: Some(kind),
            },
        );
    }

    /// Starts the compensation of the latest step that may have applied and has one, or
    /// finishes the saga as compensated when none is left. Steps are undone in reverse order.
    fn compensate_next(&mut self) {
        let next = self.state.steps.iter().rev().find_map(|s| {
            let def = self.def.step(&s.name)?;
            def.compensation.as_ref()?;
            s.status.may_have_applied().then(|| s.name.clone())
        });
        match next {
            Some(step) => self.send(&step, CommandKind::Compensation, 1),
            None => self.push(self.now, Event::SagaCompensated),
        }
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
        self.state
            .steps
            .iter()
            .any(|s| self.kind_of(&s.name) == StepKind::Pivot && s.status != StepStatus::Rejected)
    }
}

/// The attempt number that follows `step`'s last attempt of `kind`.
fn next_attempt(step: &crate::state::StepState, kind: CommandKind) -> u32 {
    match kind {
        CommandKind::Forward => step.attempt + 1,
        CommandKind::Compensation => step.compensation_attempt + 1,
    }
}
