//! Saga state: the fold of its events ([`evolve`]). Replaying a prefix of the log gives the
//! state as of that event, which is all time travel needs.

use crate::event::{Event, Occurred};
use saga_protocol::{CommandEnvelope, CommandKind, MessageId, SCHEMA_VERSION, Timestamp};
use serde::Serialize;
use uuid::Uuid;

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No event yet.
    New,
    Running,
    Compensating,
    Completed,
    Compensated,
    Stuck,
}

impl Status {
    /// Statuses from which the saga still acts by itself.
    pub const ACTIVE: [Status; 2] = [Status::Running, Status::Compensating];

    /// The name stored in the read model and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Stuck => "stuck",
        }
    }

    /// Completed, Compensated or Stuck: nothing more happens without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Compensated | Status::Stuck
        )
    }
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Succeeded,
    Rejected,
    Compensating,
    Compensated,
}

/// One started step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepState {
    pub name: String,
    pub attempt: u32,
    pub status: StepStatus,
    pub output: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The command sent and not yet answered; re-published after a crash.
    #[serde(skip)]
    pub pending: Option<CommandEnvelope>,
}

/// The state of one saga.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaState {
    pub saga_id: Uuid,
    pub name: String,
    pub definition_version: u32,
    pub input: serde_json::Value,
    pub status: Status,
    /// Number of events folded; the expected version of the next append.
    pub version: u64,
    /// Steps in the order they started.
    pub steps: Vec<StepState>,
    /// Why the forward path failed, or why the saga is stuck.
    pub reason: Option<String>,
    pub started_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

impl SagaState {
    /// A saga with no events.
    pub fn new(saga_id: Uuid) -> Self {
        SagaState {
            saga_id,
            name: String::new(),
            definition_version: 0,
            input: serde_json::Value::Null,
            status: Status::New,
            version: 0,
            steps: Vec::new(),
            reason: None,
            started_at: None,
            updated_at: None,
        }
    }

    /// Folds `events` from the start.
    pub fn replay<'a>(saga_id: Uuid, events: impl IntoIterator<Item = &'a Occurred>) -> Self {
        events.into_iter().fold(SagaState::new(saga_id), evolve)
    }

    pub fn step(&self, name: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Commands decided and not yet answered, to publish (again) after a restart.
    pub fn in_flight(&self) -> impl Iterator<Item = &CommandEnvelope> {
        self.steps.iter().filter_map(|s| s.pending.as_ref())
    }

    /// The saga input merged with the outputs of the steps that succeeded, in order: the
    /// arguments of the next command.
    pub fn arguments(&self) -> serde_json::Value {
        let mut args = self.input.as_object().cloned().unwrap_or_default();
        for step in &self.steps {
            if let Some(serde_json::Value::Object(out)) = &step.output {
                args.extend(out.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        serde_json::Value::Object(args)
    }

    /// The envelope of a `StepStarted` or `CompensationStarted` event of this saga.
    pub fn envelope(&self, occurred: &Occurred) -> Option<CommandEnvelope> {
        let (kind, step, attempt, command_id, participant, command, payload) = match &occurred.event
        {
            Event::StepStarted {
                step,
                attempt,
                command_id,
                participant,
                command,
                payload,
            } => (
                CommandKind::Forward,
                step,
                attempt,
                command_id,
                participant,
                command,
                payload,
            ),
            Event::CompensationStarted {
                step,
                attempt,
                command_id,
                participant,
                command,
                payload,
            } => (
                CommandKind::Compensation,
                step,
                attempt,
                command_id,
                participant,
                command,
                payload,
            ),
            _ => return None,
        };
        Some(CommandEnvelope {
            schema_version: SCHEMA_VERSION,
            message_id: command_id.clone(),
            saga_id: self.saga_id,
            saga_name: self.name.clone(),
            step: step.clone(),
            attempt: *attempt,
            kind,
            participant: participant.clone(),
            command: command.clone(),
            effect_key: format!("{}.{}", self.saga_id, step),
            payload: payload.clone(),
            sent_at: occurred.at,
        })
    }

    fn step_mut(&mut self, name: &str) -> Option<&mut StepState> {
        self.steps.iter_mut().find(|s| s.name == name)
    }

    /// Whether `command_id` is the unanswered command of `step`.
    pub fn is_pending(&self, step: &str, command_id: &MessageId) -> bool {
        self.step(step)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| &p.message_id == command_id)
    }
}

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
            input,
        } => {
            state.name = name.clone();
            state.definition_version = *definition_version;
            state.input = input.clone();
            state.status = Status::Running;
            state.started_at = Some(at);
        }
        Event::StepStarted { step, attempt, .. } => {
            let pending = state.envelope(occurred);
            state.steps.retain(|s| &s.name != step);
            state.steps.push(StepState {
                name: step.clone(),
                attempt: *attempt,
                status: StepStatus::Running,
                output: None,
                reason: None,
                started_at: at,
                ended_at: None,
                pending,
            });
        }
        Event::StepSucceeded { step, output, .. } => {
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Succeeded;
                s.output = Some(output.clone());
                s.ended_at = Some(at);
                s.pending = None;
            }
        }
        Event::StepRejected { step, reason, .. } => {
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Rejected;
                s.reason = Some(reason.clone());
                s.ended_at = Some(at);
                s.pending = None;
            }
        }
        Event::SagaFailed { step, reason } => {
            state.status = Status::Compensating;
            state.reason = Some(format!("{step}: {reason}"));
        }
        Event::CompensationStarted { step, .. } => {
            let pending = state.envelope(occurred);
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Compensating;
                s.pending = pending;
            }
        }
        Event::StepCompensated { step, .. } => {
            if let Some(s) = state.step_mut(step) {
                s.status = StepStatus::Compensated;
                s.ended_at = Some(at);
                s.pending = None;
            }
        }
        Event::SagaCompleted => state.status = Status::Completed,
        Event::SagaCompensated => state.status = Status::Compensated,
        Event::SagaStuck { reason } => {
            state.status = Status::Stuck;
            state.reason = Some(reason.clone());
        }
    }
    state
}
