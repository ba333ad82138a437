//! Folding one event into a saga's state: [`evolve`], the only way a [`SagaState`] changes.

use crate::event::{Event, Occurred};
use crate::state::{SagaState, Status, StepState, StepStatus};
use saga_protocol::{CommandKind, MessageId};

/// Applies one event. Pure and total: an event that does not fit the state changes only the
/// version, so replaying any stored log never fails.
pub fn evolve(mut state: SagaState, occurred: &Occurred) -> SagaState {
    state.version += 1;
    state.updated_at = Some(occurred.at);
    let at = occurred.at;
    match &occurred.event {
        Event::SagaStarted {
            name,
            definition_version,
            definition_hash,
            input,
            deadline_at,
            trace_context,
        } => {
            state.name = name.clone();
            state.trace_context = trace_context.clone();
            state.definition_version = *definition_version;
            state.definition_hash = definition_hash.clone();
            state.input = input.clone();
            state.status = Status::Running;
            state.started_at = Some(at);
            state.deadline_at = *deadline_at;
        }
        Event::StepStarted {
            step,
            attempt,
            timeout_at,
            ..
        } => {
            let pending = state.envelope(occurred);
            match state.step_mut(step) {
                Some(s) => {
                    s.attempt = *attempt;
                    s.status = StepStatus::Running;
                    s.timeout_at = *timeout_at;
                    s.retry_at = None;
                    s.retry_kind = None;
                    s.pending = pending;
                }
                None => state.steps.push(StepState {
                    name: step.clone(),
                    attempt: *attempt,
                    status: StepStatus::Running,
                    output: None,
                    reason: None,
                    started_at: at,
                    ended_at: None,
                    compensation_attempt: 0,
                    timeout_at: *timeout_at,
                    retry_at: None,
                    retry_kind: None,
                    pending,
                    signal: None,
                }),
            }
        }
        Event::StepSucceeded {
            step,
            attempt,
            output,
        } => {
            let id = MessageId::command(state.saga_id, step, *attempt, CommandKind::Forward);
            state.decided.insert(id);
            if let Some(s) = state.settle(step, *attempt, CommandKind::Forward) {
                s.status = StepStatus::Succeeded;
                s.output = Some(output.clone());
                s.ended_at = Some(at);
            }
        }
        Event::StepRejected {
            step,
            attempt,
            reason,
        } => {
            let id = MessageId::command(state.saga_id, step, *attempt, CommandKind::Forward);
            state.decided.insert(id);
            if let Some(s) = state.settle(step, *attempt, CommandKind::Forward) {
                s.status = StepStatus::Rejected;
                s.reason = Some(reason.clone());
                s.ended_at = Some(at);
            }
        }
        Event::CommandTimedOut { step, kind, .. } => {
            if let Some(s) = state.step_mut(step) {
                s.pending = None;
                s.timeout_at = None;
                if *kind == CommandKind::Forward {
                    s.status = StepStatus::Unknown;
                }
            }
        }
        Event::CommandFailed {
            step,
            attempt,
            kind,
            reason,
        } => {
            if let Some(s) = state.settle(step, *attempt, *kind) {
                s.timeout_at = None;
                s.reason = Some(reason.clone());
                if *kind == CommandKind::Forward {
                    s.status = StepStatus::Unknown;
                }
            }
        }
        Event::RetryScheduled {
            step,
            kind,
            retry_at,
            ..
        } => {
            if let Some(s) = state.step_mut(step) {
                s.retry_at = Some(*retry_at);
                s.retry_kind = Some(*kind);
                if *kind == CommandKind::Forward {
                    s.status = StepStatus::Retrying;
                }
            }
        }
        Event::LateReplyRecorded {
            step,
            command_id,
            kind,
            outcome,
            ..
        } => {
            state.answered.insert(command_id.clone());
            if *kind == CommandKind::Forward {
                match outcome {
                    saga_protocol::Outcome::Succeeded { .. } => {
                        state.decided.insert(command_id.clone());
                        state.succeeded_late.insert(step.clone());
                    }
                    saga_protocol::Outcome::Rejected { .. } => {
                        state.decided.insert(command_id.clone());
                    }
                    saga_protocol::Outcome::Failed { .. } => {}
                }
            }
        }
        Event::SagaFailed { step, reason } => {
            compensating(&mut state, format!("{step}: {reason}"));
        }
        Event::SagaCancelled { by, reason } => {
            compensating(&mut state, format!("cancelled by {by}: {reason}"));
        }
        Event::CompensationStarted {
            step,
            attempt,
            timeout_at,
            ..
        } => {
            let pending = state.envelope(occurred);
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Compensating;
                s.compensation_attempt = *attempt;
                s.timeout_at = *timeout_at;
                s.retry_at = None;
                s.retry_kind = None;
                s.pending = pending;
            }
        }
        Event::StepCompensated { step, attempt } => {
            if let Some(s) = state.settle(step, *attempt, CommandKind::Compensation) {
                s.status = StepStatus::Compensated;
                s.ended_at = Some(at);
                s.timeout_at = None;
            }
        }
        Event::OperatorRetried { .. } => {
            if let Some(kind) = state
                .stuck_on
                .take()
                .map(|(_, kind)| kind)
                .or(state.stalled.take())
            {
                state.status = resumed(kind);
            }
        }
        Event::StepSkipped { step, kind, .. } => {
            state.stuck_on = None;
            state.status = resumed(*kind);
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Skipped;
                s.ended_at = Some(at);
                s.pending = None;
                s.timeout_at = None;
                s.retry_at = None;
            }
        }
        Event::SagaAborted { reason, by } => {
            state.status = Status::Aborted;
            state.reason = Some(format!("aborted by {by}: {reason}"));
            state.stuck_on = None;
            for s in &mut state.steps {
                s.pending = None;
                s.timeout_at = None;
                s.retry_at = None;
            }
        }
        Event::SignalAwaited {
            step,
            signal,
            timeout_at,
        } => {
            let waiting = StepState {
                name: step.clone(),
                attempt: 1,
                status: StepStatus::Waiting,
                output: None,
                reason: None,
                started_at: at,
                ended_at: None,
                compensation_attempt: 0,
                timeout_at: Some(*timeout_at),
                retry_at: None,
                retry_kind: None,
                pending: None,
                signal: Some(signal.clone()),
            };
            match state.step_mut(step) {
                Some(s) => {
                    s.attempt += 1;
                    s.status = StepStatus::Waiting;
                    s.timeout_at = Some(*timeout_at);
                    s.reason = None;
                }
                None => state.steps.push(waiting),
            }
        }
        Event::SignalReceived { step, payload, .. } => {
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Succeeded;
                s.output = Some(payload.clone());
                s.ended_at = Some(at);
                s.timeout_at = None;
            }
        }
        Event::SignalTimedOut { step, signal } => {
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Rejected;
                s.reason = Some(format!("no signal `{signal}` before the timeout"));
                s.ended_at = Some(at);
                s.timeout_at = None;
            }
        }
        Event::SignalIgnored { .. } => {}
        Event::SagaCompleted => state.status = Status::Completed,
        Event::SagaCompensated => state.status = Status::Compensated,
        Event::SagaStuck { reason, step, kind } => {
            state.status = Status::Stuck;
            state.reason = Some(reason.clone());
            state.stuck_on = step.clone().zip(*kind);
            // Stuck on no step: the saga as a whole could not go on (see `decide::stall`).
            state.stalled = kind.filter(|_| step.is_none());
            // A compensation still pending when the saga gets stuck on it was refused: its
            // refusal answered it, so a copy of that reply is a duplicate, not a late reply.
            // Other commands still in flight stay unanswered; their replies are late.
            let refused = step
                .as_deref()
                .filter(|_| *kind == Some(CommandKind::Compensation))
                .and_then(|name| state.step(name))
                .and_then(|s| s.pending.as_ref())
                .filter(|p| p.kind == CommandKind::Compensation)
                .map(|p| p.message_id.clone());
            state.answered.extend(refused);
            for s in &mut state.steps {
                s.pending = None;
                s.timeout_at = None;
                s.retry_at = None;
            }
        }
    }
    state
}

/// The status a stuck saga resumes in when its `kind` of command is retried or skipped.
fn resumed(kind: CommandKind) -> Status {
    match kind {
        CommandKind::Forward => Status::Running,
        CommandKind::Compensation => Status::Compensating,
    }
}

/// The forward path stops for `reason` and the saga compensates. Forward retries stop: a step
/// waiting for its next attempt may have applied an earlier one, so it is compensated like a
/// step whose outcome is unknown.
fn compensating(state: &mut SagaState, reason: String) {
    state.status = Status::Compensating;
    state.reason = Some(reason);
    for s in &mut state.steps {
        if s.retry_kind == Some(CommandKind::Forward) {
            s.retry_at = None;
            s.retry_kind = None;
            s.status = StepStatus::Unknown;
        }
        // An await step stops waiting: it did nothing, so there is nothing to undo.
        if s.status == StepStatus::Waiting {
            s.status = StepStatus::Rejected;
            s.reason = Some("no longer awaited: the saga compensates".into());
            s.timeout_at = None;
        }
    }
}
