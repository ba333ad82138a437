//! Giving up and undoing: retries with backoff, failing the forward path, compensating in
//! reverse order, getting stuck.

use super::Decision;
use crate::definition::StepKind;
use crate::event::Event;
use crate::policy::RetryPolicy;
use crate::state::Status;
use saga_protocol::CommandKind;

impl Decision<'_> {
    /// After a timeout or a transient failure of attempt `attempt`: schedule the next attempt
    /// with backoff, or give up. A pivot and the steps after it never give up: their outcome
    /// must become known, because nothing can undo them.
    pub(super) fn retry_or_give_up(
        &mut self,
        step: &str,
        kind: CommandKind,
        attempt: u32,
        reason: String,
    ) {
        if kind == CommandKind::Forward && self.state.status == Status::Compensating {
            // The saga is undoing itself already: this step's outcome stays unknown and it
            // is compensated with the rest.
            return self.compensate_next();
        }
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
    pub(super) fn fail(&mut self, step: String, reason: String) {
        self.push(self.now, Event::SagaFailed { step, reason });
        self.compensate_next();
    }

    pub(super) fn stuck(&mut self, reason: String, step: &str, kind: CommandKind) {
        self.push(
            self.now,
            Event::SagaStuck {
                reason,
                step: Some(step.to_string()),
                kind: Some(kind),
            },
        );
    }

    /// Moves the compensation on. First every command in flight must settle (a parallel
    /// member still running may yet apply). Then the latest unit with steps that may have
    /// applied is compensated, all its members at once; the unit before it only when those
    /// are done. Nothing left: the saga is compensated.
    pub(super) fn compensate_next(&mut self) {
        if self.state.status != Status::Compensating {
            return;
        }
        let busy = self
            .state
            .steps
            .iter()
            .any(|s| s.pending.is_some() || s.retry_at.is_some());
        if busy {
            return;
        }
        let undo = |s: &crate::state::StepState| {
            let def = self.def.step(&s.name)?;
            def.compensation.as_ref()?;
            self.state.may_have_applied(s).then(|| s.name.clone())
        };
        let Some(last) = self.state.steps.iter().rev().find_map(undo) else {
            return self.push(self.now, Event::SagaCompensated);
        };
        let unit: Vec<String> = self
            .def
            .unit_of(&last)
            .iter()
            .filter_map(|member| self.state.step(&member.name).and_then(undo))
            .collect();
        for step in unit {
            self.send(&step, CommandKind::Compensation, 1);
        }
    }
}
