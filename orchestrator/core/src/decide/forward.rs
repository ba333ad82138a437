//! The forward path: sending commands, starting units (a step or a parallel group).

use super::Decision;
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
