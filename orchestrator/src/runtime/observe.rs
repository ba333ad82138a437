//! What the runtime reports about sagas: metrics and the spans of a saga's trace.
//!
//! Everything here is derived from the events the core decided, after they are stored: the
//! core returns events, the edge counts them. Replaying the decision against the state it
//! was taken on shows which command attempts it ended (a command that was pending before an
//! event and is not after it has its answer, its timeout, or was given up) and how.
//!
//! Spans recorded here (see [`saga_telemetry::saga`] for why after the fact):
//! - `step {step}` / `compensate {step}`: one per command attempt, from the moment the
//!   command was decided (`sent_at`) to the moment its outcome was recorded, child of the
//!   saga's root; its id is derived from the command's message id, so the publish span and
//!   the participant's spans, recorded long before, are already its children.
//! - `saga {name}`: the root, from `SagaStarted` to the first end (completed, compensated,
//!   stuck or aborted).
//!
//! Metrics (Prometheus names):
//! `saga_started_total`, `saga_completed_total`, `saga_compensated_total`,
//! `saga_stuck_total`, `saga_aborted_total` (label `saga`); `saga_steps_total` and
//! `saga_compensations_total` (command attempts by `saga`, `step`, `outcome`);
//! `saga_step_duration_seconds` (`saga`, `step`, `kind`, `outcome`);
//! `saga_duration_seconds` (`saga`, `outcome`); gauges `saga_in_flight`, `saga_overdue`,
//! `saga_partitions_owned`, `saga_consumer_pending` and `saga_consumer_ack_pending`
//! (`consumer`), sampled when
//! `/metrics` is read; `saga_dead_letters_total` (`consumer`); `saga_archived_total`
//! (finished sagas this replica moved to the archive, see [`super::retention`]).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use saga_core::{Event, Occurred, SagaState, evolve};
use saga_protocol::{CommandEnvelope, CommandKind, Timestamp};
use saga_telemetry::saga::{Finished, SagaTrace};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The orchestrator's instruments.
#[derive(Debug)]
pub(crate) struct Metrics {
    started: Counter<u64>,
    completed: Counter<u64>,
    compensated: Counter<u64>,
    stuck: Counter<u64>,
    aborted: Counter<u64>,
    steps: Counter<u64>,
    compensations: Counter<u64>,
    step_duration: Histogram<f64>,
    saga_duration: Histogram<f64>,
    pub in_flight: Gauge<u64>,
    /// Sagas still active well past their deadline (see [`super::overdue`]).
    pub overdue: Gauge<u64>,
    /// Partitions whose leases this replica holds (see [`super::partitions`]).
    pub partitions_owned: Gauge<u64>,
    pub consumer_pending: Gauge<u64>,
    pub consumer_ack_pending: Gauge<u64>,
    pub dead_letters: Counter<u64>,
    pub archived: Counter<u64>,
}

impl Metrics {
    /// Instruments on the process's meter (no-ops until telemetry is installed).
    pub fn new() -> Self {
        let meter = saga_telemetry::metrics::meter();
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_description(description)
                .with_unit("s")
                .with_boundaries(saga_telemetry::metrics::DURATION_BUCKETS.to_vec())
                .build()
        };
        Metrics {
            started: counter("saga.started", "Sagas started"),
            completed: counter("saga.completed", "Sagas that completed"),
            compensated: counter("saga.compensated", "Sagas that were compensated"),
            stuck: counter("saga.stuck", "Times a saga became stuck"),
            aborted: counter("saga.aborted", "Sagas aborted by an operator"),
            steps: counter("saga.steps", "Step command attempts ended, by outcome"),
            compensations: counter(
                "saga.compensations",
                "Compensation attempts ended, by outcome",
            ),
            step_duration: seconds(
                "saga.step.duration",
                "From a command decided to its outcome recorded",
            ),
            saga_duration: seconds("saga.duration", "From a saga's start to its end"),
            in_flight: meter
                .u64_gauge("saga.in_flight")
                .with_description("Sagas running or compensating")
                .build(),
            overdue: meter
                .u64_gauge("saga.overdue")
                .with_description(
                    "Sagas still running or compensating past their deadline (or start) plus the overdue margin",
                )
                .build(),
            partitions_owned: meter
                .u64_gauge("saga.partitions.owned")
                .with_description("Saga partitions this replica owns (fires their timers)")
                .build(),
            consumer_pending: meter
                .u64_gauge("saga.consumer.pending")
                .with_description("Messages not yet delivered to the consumer (its lag)")
                .build(),
            consumer_ack_pending: meter
                .u64_gauge("saga.consumer.ack_pending")
                .with_description("Messages delivered to the consumer and not yet acknowledged")
                .build(),
            dead_letters: counter(
                "saga.dead_letters",
                "Messages sent to the dead-letter stream",
            ),
            archived: counter(
                "saga.archived",
                "Finished sagas moved to the archive by this replica",
            ),
        }
    }
}

/// One stored decision, to report: the saga as it was before, and what was decided.
pub(crate) struct Decision<'a> {
    pub name: &'a str,
    pub version: u32,
    pub before: SagaState,
    pub events: &'a [Occurred],
    /// Whether the saga had been stuck before: its root span was recorded then.
    pub was_stuck: bool,
    /// When the events were recorded.
    pub now: Timestamp,
}

/// Counts what `decision` did and records the spans it ended.
pub(crate) fn observe(metrics: &Metrics, decision: Decision<'_>) {
    let Decision {
        name,
        version,
        before,
        events,
        was_stuck,
        now,
    } = decision;
    let saga = KeyValue::new("saga", name.to_string());
    let mut state = before;
    let mut trace = state.trace_context.as_deref().and_then(SagaTrace::parse);
    for occurred in events {
        let pending: Vec<CommandEnvelope> = state.in_flight().cloned().collect();
        state = evolve(state, occurred);
        for command in pending {
            if !state.is_pending(&command.step, &command.message_id) {
                let (outcome, error) = outcome(&occurred.event);
                let ended = Ended {
                    command: &command,
                    outcome,
                    error,
                    version,
                    now,
                };
                attempt_ended(metrics, &saga, trace.as_ref(), ended);
            }
        }
        let ended = match &occurred.event {
            Event::SagaStarted { trace_context, .. } => {
                metrics.started.add(1, std::slice::from_ref(&saga));
                trace = trace_context.as_deref().and_then(SagaTrace::parse);
                None
            }
            Event::SagaCompleted => Some((&metrics.completed, "completed")),
            Event::SagaCompensated => Some((&metrics.compensated, "compensated")),
            Event::SagaStuck { .. } => Some((&metrics.stuck, "stuck")),
            Event::SagaAborted { .. } => Some((&metrics.aborted, "aborted")),
            _ => None,
        };
        let Some((counter, outcome)) = ended else {
            continue;
        };
        counter.add(1, std::slice::from_ref(&saga));
        if was_stuck {
            // Its duration and root span were recorded when it first stopped.
            continue;
        }
        let started_at = state.started_at.unwrap_or(now);
        metrics.saga_duration.record(
            secs(now.since(started_at)),
            &[saga.clone(), KeyValue::new("outcome", outcome)],
        );
        if let Some(trace) = &trace {
            trace.record_root(Finished {
                name: format!("saga {name}"),
                start: system_time(started_at),
                end: system_time(now),
                attributes: vec![
                    KeyValue::new("saga.id", state.saga_id.to_string()),
                    KeyValue::new("saga.name", name.to_string()),
                    KeyValue::new("saga.version", i64::from(version)),
                    KeyValue::new("saga.outcome", outcome),
                ],
                error: (outcome != "completed").then(|| state.reason.clone().unwrap_or_default()),
            });
        }
    }
}

/// The outcome of a command attempt ended by `event`, and the error to record, if any.
fn outcome(event: &Event) -> (&'static str, Option<String>) {
    match event {
        Event::StepSucceeded { .. } => ("succeeded", None),
        Event::StepCompensated { .. } => ("compensated", None),
        Event::StepRejected { reason, .. } => ("rejected", Some(reason.clone())),
        Event::CommandFailed { reason, .. } => ("failed", Some(reason.clone())),
        Event::CommandTimedOut { .. } => ("timed_out", Some("no reply before the timeout".into())),
        Event::StepSkipped { by, reason, .. } => {
            ("skipped", Some(format!("skipped by {by}: {reason}")))
        }
        Event::SagaStuck { reason, .. } => ("stuck", Some(reason.clone())),
        Event::SagaAborted { by, reason } => {
            ("aborted", Some(format!("aborted by {by}: {reason}")))
        }
        Event::SagaCancelled { by, reason } => {
            ("cancelled", Some(format!("cancelled by {by}: {reason}")))
        }
        _ => ("ended", None),
    }
}

/// A command attempt that ended, and how.
struct Ended<'a> {
    command: &'a CommandEnvelope,
    outcome: &'static str,
    error: Option<String>,
    /// The saga definition's version.
    version: u32,
    /// When its end was recorded.
    now: Timestamp,
}

/// Counts an ended attempt and records its span (`step …` or `compensate …`).
fn attempt_ended(metrics: &Metrics, saga: &KeyValue, trace: Option<&SagaTrace>, ended: Ended<'_>) {
    let Ended {
        command,
        outcome,
        error,
        version,
        now,
    } = ended;
    let (counter, kind, verb) = match command.kind {
        CommandKind::Forward => (&metrics.steps, "forward", "step"),
        CommandKind::Compensation => (&metrics.compensations, "compensation", "compensate"),
    };
    let step = KeyValue::new("step", command.step.clone());
    let outcome_label = KeyValue::new("outcome", outcome);
    counter.add(1, &[saga.clone(), step.clone(), outcome_label.clone()]);
    metrics.step_duration.record(
        secs(now.since(command.sent_at)),
        &[
            saga.clone(),
            step,
            KeyValue::new("kind", kind),
            outcome_label,
        ],
    );
    let Some(trace) = trace else {
        return;
    };
    trace.record_child(
        command.message_id.as_str(),
        Finished {
            name: format!("{verb} {}", command.step),
            start: system_time(command.sent_at),
            end: system_time(now),
            attributes: vec![
                KeyValue::new("saga.id", command.saga_id.to_string()),
                KeyValue::new("saga.name", command.saga_name.clone()),
                KeyValue::new("saga.version", i64::from(version)),
                KeyValue::new("saga.step", command.step.clone()),
                KeyValue::new("saga.attempt", i64::from(command.attempt)),
                KeyValue::new("saga.kind", kind),
                KeyValue::new("saga.participant", command.participant.clone()),
                KeyValue::new("saga.command", command.command.clone()),
                KeyValue::new("saga.outcome", outcome),
                KeyValue::new(
                    "messaging.message.id",
                    command.message_id.as_str().to_string(),
                ),
            ],
            error,
        },
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.millis()).unwrap_or(0))
}

impl<S: crate::store::EventStore, T: crate::transport::Transport> super::Orchestrator<S, T> {
    /// Samples the gauges that are read rather than counted: sagas in flight (from the read
    /// model) and the reply consumer's lag (from JetStream). Called when `/metrics` is read;
    /// a failed read leaves the last value.
    pub async fn sample_gauges(&self) {
        let active: Vec<&str> = saga_core::Status::ACTIVE
            .iter()
            .map(|s| s.as_str())
            .collect();
        match self.store.with_status(&active).await {
            Ok(ids) => self.metrics.in_flight.record(ids.len() as u64, &[]),
            Err(e) => tracing::warn!(error = %e, "cannot count the sagas in flight"),
        }
        let before = super::overdue_before(&self.options, self.now());
        match self.store.count_overdue(&active, before).await {
            Ok(n) => self.metrics.overdue.record(n, &[]),
            Err(e) => tracing::warn!(error = %e, "cannot count the overdue sagas"),
        }
        self.metrics
            .partitions_owned
            .record(self.ownership.owned().len() as u64, &[]);
        match self.transport.reply_lag().await {
            Ok(lag) => {
                let consumer = [opentelemetry::KeyValue::new("consumer", lag.consumer)];
                self.metrics.consumer_pending.record(lag.pending, &consumer);
                self.metrics
                    .consumer_ack_pending
                    .record(lag.ack_pending, &consumer);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the reply consumer's lag"),
        }
    }
}
