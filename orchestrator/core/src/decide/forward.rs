//! The forward path: sending commands, starting units (a step or a parallel group).

use super::{Decision, Rejection};
use crate::definition::StepKind;
use crate::event::Event;
use crate::state::{Status, StepStatus};
use saga_protocol::{CommandKind, MessageId};

impl Decision<'_> {
    /// Sends attempt `attempt` of `step`'s command or compensation.
    pub(super) fn send(&mut self, name: &str, kind: CommandKind, attempt: u32) {
        let Some(step) = self.def.step(name) else {
            return;
        };
        if let Some(signal) = &step.signal {
            // An await step sends nothing: it waits (again, after an operator's retry); it has
            // nothing to undo.
            if kind == CommandKind::Forward {
                let event = Event::SignalAwaited {
                    step: step.name.clone(),
                    signal: signal.name.clone(),
                    timeout_at: self.now.plus(step.timeout),
                };
                self.push(self.now, event);
            }
            return;
        }
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
        let mapping = match kind {
            CommandKind::Forward => step.input.as_ref(),
            CommandKind::Compensation => step.compensation_input.as_ref().or(step.input.as_ref()),
        };
        // A step whose outcome is unknown (it timed out) has no output, so a compensation
        // mapping that reads it cannot be complete: those fields are left out and the
        // participant finds the effect by its effect key, as every compensation can.
        let outcome_unknown = kind == CommandKind::Compensation
            && self.state.step(name).is_some_and(|s| s.output.is_none());
        let payload = match mapping {
            None => self.state.arguments(),
            Some(m) if outcome_unknown => {
                crate::definition::mapping::eval_available(m, &self.state.context())
            }
            Some(m) => match crate::definition::mapping::eval(m, &self.state.context()) {
                Ok(p) => p,
                Err(e) => return self.unbuildable(name, kind, e),
            },
        };
        // A command the bus would refuse on every retry is not sent at all.
        let size = saga_protocol::limits::json_size(&payload);
        if size > saga_protocol::limits::MAX_COMMAND_PAYLOAD {
            let max = saga_protocol::limits::MAX_COMMAND_PAYLOAD;
            let why =
                format!("its payload is {size} bytes, over the {max} bytes a command may carry");
            return self.unbuildable(name, kind, why);
        }
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

    /// Starts `first`'s unit: the step alone, or every step of its parallel group at once.
    pub(super) fn start_unit(&mut self, first: &str) {
        let unit: Vec<String> = self
            .def
            .unit_of(first)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        for name in unit {
            if self.state.status != Status::Running {
                break;
            }
            self.send(&name, CommandKind::Forward, 1);
        }
    }

    /// After `step` succeeded or was skipped: when its whole unit is done, start the next
    /// unit, or complete.
    pub(super) fn forward_after(&mut self, step: &str) {
        let unit_done = self.def.unit_of(step).iter().all(|s| {
            self.state
                .step(&s.name)
                .is_some_and(|st| matches!(st.status, StepStatus::Succeeded | StepStatus::Skipped))
        });
        if !unit_done {
            return;
        }
        match self.def.next_step(step) {
            Some(next) => {
                let next = next.name.clone();
                self.start_unit(&next);
            }
            None => self.push(self.now, Event::SagaCompleted),
        }
    }

    /// A signal for the saga: the step that awaits it takes its payload as output and the
    /// saga goes on; one that comes when that step no longer waits is recorded and ignored.
    pub(super) fn signal(
        &mut self,
        name: String,
        payload: serde_json::Value,
    ) -> Result<(), Rejection> {
        if self.state.status == Status::New {
            return Err(Rejection::NotStarted);
        }
        let def = self.def;
        let (step, signal) = def
            .awaiting(&name)
            .ok_or_else(|| Rejection::UnknownSignal(name.clone()))?;
        let payload = signal.check(&payload).map_err(Rejection::InvalidSignal)?;
        let waiting = self
            .state
            .step(&step.name)
            .map(|s| s.status == StepStatus::Waiting);
        let ignored = |reason: String| Event::SignalIgnored {
            signal: name.clone(),
            reason,
            payload: payload.clone(),
        };
        match waiting {
            None if self.state.status == Status::Running => {
                return Err(Rejection::NotAwaiting {
                    signal: name,
                    step: step.name.clone(),
                });
            }
            Some(true) if self.state.status == Status::Running => {
                self.push(
                    self.now,
                    Event::SignalReceived {
                        step: step.name.clone(),
                        signal: name.clone(),
                        payload: payload.clone(),
                    },
                );
                self.forward_after(&step.name);
            }
            _ => {
                let reason = match self.state.step(&step.name).map(|s| s.status) {
                    Some(StepStatus::Succeeded) => {
                        format!("step `{}` received it already", step.name)
                    }
                    Some(StepStatus::Rejected) => {
                        format!(
                            "step `{}` stopped waiting for it (timed out, or the saga compensates)",
                            step.name
                        )
                    }
                    _ => format!(
                        "the saga is {} and waits for it no more",
                        self.state.status.as_str()
                    ),
                };
                self.push(self.now, ignored(reason));
            }
        }
        Ok(())
    }

    /// A command whose fields cannot be built from the mapping (an output that is missing,
    /// say): nothing is sent. The forward path fails; a compensation or a step after the
    /// pivot is stuck for an operator.
    pub(super) fn unbuildable(&mut self, step: &str, kind: CommandKind, error: String) {
        let reason = format!("cannot build the command of `{step}`: {error}");
        if kind == CommandKind::Forward && self.kind_of(step) != StepKind::Retriable {
            if self.state.status == Status::Running {
                self.fail(step.to_string(), reason);
            }
        } else {
            self.stuck(reason, step, kind);
        }
    }
}
