//! Saga state: the fold of its events ([`evolve`](crate::evolve)). Replaying a prefix of the
//! log gives the state as of that event, which is all time travel needs.

use crate::event::{Event, Occurred};
use saga_protocol::{CommandEnvelope, CommandKind, MessageId, SCHEMA_VERSION, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No event yet.
    New,
    Running,
    Compensating,
    Completed,
    Compensated,
    Stuck,
    /// Stopped by an operator.
    Aborted,
}

impl Status {
    /// Statuses from which the saga still acts by itself.
    pub const ACTIVE: [Status; 2] = [Status::Running, Status::Compensating];

    /// The name stored in the read model and shown to users.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Stuck => "stuck",
            Status::Aborted => "aborted",
        }
    }

    /// Completed, Compensated, Stuck or Aborted: nothing more happens without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Compensated | Status::Stuck | Status::Aborted
        )
    }

    /// Completed, Compensated or Aborted: not even an operator can move it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Compensated | Status::Aborted
        )
    }
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    /// Waiting to send the next attempt.
    Retrying,
    Succeeded,
    Rejected,
    /// Timed out or failed with no attempt left: it may or may not have been applied, so it
    /// is compensated like a step that succeeded.
    Unknown,
    Compensating,
    Compensated,
    /// Resolved by an operator.
    Skipped,
    /// An await step waiting for its signal.
    Waiting,
}

impl StepStatus {
    /// Whether the step's effect may exist, so that undoing the saga must compensate it.
    pub fn may_have_applied(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Unknown | StepStatus::Retrying
        )
    }
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
    /// Attempts of the compensation so far (0: not compensated).
    pub compensation_attempt: u32,
    /// When the pending command times out.
    pub timeout_at: Option<Timestamp>,
    /// When the next attempt is due, and of which command.
    pub retry_at: Option<Timestamp>,
    #[serde(skip)]
    pub retry_kind: Option<CommandKind>,
    /// The command sent and not yet answered; re-published after a crash.
    #[serde(skip)]
    pub pending: Option<CommandEnvelope>,
    /// An await step's signal (it waits until `timeout_at` while `status` is waiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// The state of one saga.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaState {
    pub saga_id: Uuid,
    pub name: String,
    pub definition_version: u32,
    /// The content hash of that version, as recorded at start (none in older logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition_hash: Option<String>,
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
    /// When the forward path must be done by.
    pub deadline_at: Option<Timestamp>,
    /// What a Stuck saga is stuck on: the step and its command kind.
    pub stuck_on: Option<(String, CommandKind)>,
    /// A Stuck saga that could not go on at all (its definition was missing): the way it was
    /// going, forward or compensating, to resume on an operator's retry.
    #[serde(skip)]
    pub stalled: Option<CommandKind>,
    /// The saga's trace (a W3C `traceparent`), as recorded at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<String>,
    /// Commands whose reply has been recorded: a second copy changes nothing.
    #[serde(skip)]
    pub answered: std::collections::BTreeSet<MessageId>,
    /// Forward commands answered with a decision (a success or a refusal, which the
    /// participant records under the message id): no copy of them can apply later. A
    /// timed-out command is not, nor one answered with a transient failure, which the
    /// participant could not record.
    #[serde(skip)]
    pub decided: std::collections::BTreeSet<MessageId>,
    /// Steps whose forward command succeeded after it had timed out: the effect exists,
    /// whatever a later attempt met.
    #[serde(skip)]
    pub succeeded_late: std::collections::BTreeSet<String>,
}

impl SagaState {
    /// A saga with no events.
    pub fn new(saga_id: Uuid) -> Self {
        SagaState {
            saga_id,
            name: String::new(),
            definition_version: 0,
            definition_hash: None,
            input: serde_json::Value::Null,
            status: Status::New,
            version: 0,
            steps: Vec::new(),
            reason: None,
            started_at: None,
            updated_at: None,
            deadline_at: None,
            stuck_on: None,
            stalled: None,
            trace_context: None,
            answered: Default::default(),
            decided: Default::default(),
            succeeded_late: Default::default(),
        }
    }

    /// Folds `events` from the start.
    pub fn replay<'a>(saga_id: Uuid, events: impl IntoIterator<Item = &'a Occurred>) -> Self {
        events
            .into_iter()
            .fold(SagaState::new(saga_id), crate::evolve::evolve)
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

    /// What input mappings read: `{"input": …, "steps": {name: {"output": …}}}`.
    pub fn context(&self) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = self
            .steps
            .iter()
            .filter_map(|s| {
                let output = s.output.clone()?;
                Some((s.name.clone(), serde_json::json!({ "output": output })))
            })
            .collect();
        serde_json::json!({ "input": self.input, "steps": steps })
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
                ..
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
                ..
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

    /// Records that attempt `attempt` of `step`'s `kind` command was answered (a copy of the
    /// reply then changes nothing), and returns the step with that command no longer pending.
    pub(crate) fn settle(
        &mut self,
        step: &str,
        attempt: u32,
        kind: CommandKind,
    ) -> Option<&mut StepState> {
        self.answered
            .insert(MessageId::command(self.saga_id, step, attempt, kind));
        let s = self.step_mut(step)?;
        s.pending = None;
        Some(s)
    }

    pub(crate) fn step_mut(&mut self, name: &str) -> Option<&mut StepState> {
        self.steps.iter_mut().find(|s| s.name == name)
    }

    /// Every time at which something may fall due: pending timeouts, scheduled retries and,
    /// while the forward path runs, the deadline. The runtime arms a timer for each.
    pub fn timers(&self) -> Vec<Timestamp> {
        let mut at: Vec<Timestamp> = self
            .steps
            .iter()
            .flat_map(|s| {
                let waits = s.pending.is_some() || s.status == StepStatus::Waiting;
                [s.timeout_at.filter(|_| waits), s.retry_at]
            })
            .flatten()
            .collect();
        if self.status == Status::Running {
            at.extend(self.deadline_at);
        }
        at
    }

    /// The steps whose effect may still exist: done, or maybe done, and not compensated
    /// (a compensation sent but not confirmed counts). For an aborted saga, what it left
    /// behind for an operator to see to.
    pub fn effects_left(&self) -> Vec<&StepState> {
        self.steps
            .iter()
            .filter(|s| self.may_have_applied(s) || s.status == StepStatus::Compensating)
            .collect()
    }

    /// Whether an earlier attempt of `step`'s command may have applied, or did: it has no
    /// decision recorded (it timed out, or failed transiently, so a copy of it may still
    /// reach the participant), or it succeeded after its timeout. A refusal of a retry is
    /// then no proof that nothing applied: the retry may have reached the participant first.
    pub fn earlier_attempt_open(&self, step: &str) -> bool {
        let Some(s) = self.step(step) else {
            return false;
        };
        self.succeeded_late.contains(step)
            || (1..s.attempt).any(|attempt| {
                let id = MessageId::command(self.saga_id, step, attempt, CommandKind::Forward);
                !self.decided.contains(&id)
            })
    }

    /// Whether `step`'s effect may exist: it succeeded or may have, or it was refused while
    /// an earlier attempt of it is still open ([`SagaState::earlier_attempt_open`]).
    pub fn may_have_applied(&self, step: &StepState) -> bool {
        step.status.may_have_applied()
            || (step.status == StepStatus::Rejected && self.earlier_attempt_open(&step.name))
    }

    /// Whether `command_id` is the unanswered command of `step`.
    pub fn is_pending(&self, step: &str, command_id: &MessageId) -> bool {
        self.step(step)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| &p.message_id == command_id)
    }
}
