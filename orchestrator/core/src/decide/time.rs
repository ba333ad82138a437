//! Time passing: timeouts, scheduled retries and the deadline, and operator actions.

use super::{Decision, Rejection, next_attempt};
use super::{OperatorAction, OperatorCommand};
use crate::event::Event;
use crate::state::{Status, StepStatus};
use saga_protocol::CommandKind;

impl Decision<'_> {
    pub(super) fn tick(&mut self) {
        let now = self.now;
        if self.state.status.is_terminal() || self.state.status == Status::New {
            return;
        }
        let past_deadline = self.state.deadline_at.is_some_and(|d| d <= now);
        if self.state.status == Status::Running && past_deadline && !self.pivot_sent() {
            // Every command in flight (a whole parallel group, maybe) has an unknown outcome.
            let running: Vec<_> = self
                .state
                .steps
                .iter()
                .filter_map(|s| {
                    s.pending
                        .as_ref()
                        .map(|p| (s.name.clone(), s.attempt, p.kind))
                })
                .collect();
            for (step, attempt, kind) in running {
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
        if self.signal_timed_out() {
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

    /// An await step whose signal did not come in time: before the pivot the saga is undone
    /// (the step itself did nothing); after it, an operator decides. Whether one had.
    fn signal_timed_out(&mut self) -> bool {
        let now = self.now;
        let def = self.def;
        let Some((step, signal, timeout)) = self
            .state
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Waiting && s.timeout_at.is_some_and(|t| t <= now))
            .find_map(|s| {
                let step = def.step(&s.name)?;
                Some((
                    s.name.clone(),
                    step.signal.as_ref()?.name.clone(),
                    step.timeout,
                ))
            })
        else {
            return false;
        };
        self.push(
            now,
            Event::SignalTimedOut {
                step: step.clone(),
                signal: signal.clone(),
            },
        );
        let reason = format!(
            "no signal `{signal}` within {}",
            humantime::format_duration(timeout)
        );
        if self.kind_of(&step) == crate::definition::StepKind::Retriable {
            self.stuck(reason, &step, CommandKind::Forward);
        } else {
            self.fail(step, reason);
        }
        true
    }

    pub(super) fn operator(&mut self, action: OperatorAction) -> Result<(), Rejection> {
        let status = self.state.status;
        let now = self.now;
        let OperatorAction {
            command,
            by,
            reason,
        } = action;
        match command {
            OperatorCommand::Abort => {
                if status.is_final() {
                    return Err(Rejection::Finished(status.as_str()));
                }
                if status != Status::Stuck {
                    return Err(Rejection::NotStuck(status.as_str()));
                }
                self.push(now, Event::SagaAborted { by, reason });
            }
            OperatorCommand::Cancel => {
                if status.is_final() {
                    return Err(Rejection::Finished(status.as_str()));
                }
                if status != Status::Running {
                    return Err(Rejection::NotRunning(status.as_str()));
                }
                if let Some(pivot) = self.sent_pivot() {
                    return Err(Rejection::PastPivot(pivot.to_string()));
                }
                // Like a failure: what is in flight settles first, then every step that
                // completed or may have is compensated, in reverse order.
                self.push(now, Event::SagaCancelled { by, reason });
                self.compensate_next();
            }
            OperatorCommand::Retry if status == Status::Stuck && self.state.stalled.is_some() => {
                self.push(now, Event::OperatorRetried { by, reason });
                self.resend_unanswered();
            }
            OperatorCommand::Skip if status == Status::Stuck && self.state.stalled.is_some() => {
                return Err(Rejection::Stalled);
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

    /// Resumes a stalled saga as it was going: getting stuck dropped its commands in flight
    /// (their replies are late now), so each step that was waiting on one, or on a retry, is
    /// sent again as its next attempt. Retries of a step share its effect at the participant.
    fn resend_unanswered(&mut self) {
        let waiting: Vec<(String, CommandKind)> = self
            .state
            .steps
            .iter()
            .filter_map(|s| match s.status {
                StepStatus::Running | StepStatus::Retrying | StepStatus::Waiting => {
                    Some((s.name.clone(), CommandKind::Forward))
                }
                StepStatus::Compensating => Some((s.name.clone(), CommandKind::Compensation)),
                _ => None,
            })
            .collect();
        for (step, kind) in waiting {
            let attempt = self.state.step(&step).map_or(1, |s| next_attempt(s, kind));
            self.send(&step, kind, attempt);
        }
    }
}
