//! A participant's metrics, and the small HTTP server that serves them on `/metrics`.
//!
//! Prometheus names: `saga_participant_commands_total` (`participant`, `command`,
//! `outcome`: succeeded, rejected, failed, retried, dead_lettered),
//! `saga_participant_handle_duration_seconds` (`participant`, `command`),
//! `saga_participant_duplicates_total` (`participant`, `command`: copies of a command whose
//! message id the inbox held already, answered with the recorded reply), and, sampled when
//! `/metrics` is read, `saga_participant_inbox_pruned_total` (`participant`: inbox entries
//! deleted past the inbox window, see [`crate::retention`]), `saga_consumer_pending` and `saga_consumer_ack_pending`
//! (`consumer`: `participant-{kind}`); `saga_dead_letters_total` (`consumer`).
//!
//! The server is started by the runtime when [`crate::Options::listen`] is set
//! (`saga participant … --listen 127.0.0.1:9101`). [`router`] is a plain axum router, so
//! other endpoints (health, readiness) can be merged into it.
//!
//! ```no_run
//! # async fn demo(js: async_nats::jetstream::Context) -> std::io::Result<()> {
//! use saga_participants::metrics;
//!
//! let app = metrics::router(metrics::Lag::new(js, "account"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9101").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};
use saga_protocol::subjects;
use std::time::Duration;

/// The instruments of one participant process.
#[derive(Debug)]
pub struct Metrics {
    participant: KeyValue,
    commands: Counter<u64>,
    handle_duration: Histogram<f64>,
    dead_letters: Counter<u64>,
}

impl Metrics {
    /// Instruments on the process's meter (no-ops until telemetry is installed).
    pub fn new(participant: &'static str) -> Self {
        let meter = saga_telemetry::metrics::meter();
        Metrics {
            participant: KeyValue::new("participant", participant),
            commands: meter
                .u64_counter("saga.participant.commands")
                .with_description("Commands handled by a participant, by outcome")
                .build(),
            handle_duration: meter
                .f64_histogram("saga.participant.handle.duration")
                .with_description("Time to handle one command: inbox, business change, commit")
                .with_unit("s")
                .with_boundaries(saga_telemetry::metrics::DURATION_BUCKETS.to_vec())
                .build(),
            dead_letters: meter
                .u64_counter("saga.dead_letters")
                .with_description("Messages sent to the dead-letter stream")
                .build(),
        }
    }

    /// Counts one command that ended with `outcome` after `took`.
    pub fn command(&self, command: &str, outcome: &'static str, took: Duration) {
        let command = KeyValue::new("command", command.to_string());
        self.commands.add(
            1,
            &[
                self.participant.clone(),
                command.clone(),
                KeyValue::new("outcome", outcome),
            ],
        );
        self.handle_duration
            .record(took.as_secs_f64(), &[self.participant.clone(), command]);
    }

    /// Counts one message sent to the dead-letter stream by `consumer`.
    pub fn dead_lettered(&self, consumer: &str) {
        self.dead_letters
            .add(1, &[KeyValue::new("consumer", consumer.to_string())]);
    }
}

/// Counts the duplicates a participant's inbox recognised: deliveries of a message id it had
/// handled already (a redelivery, a copy JetStream stored under another `Nats-Msg-Id`, two
/// copies in one batch), answered with the recorded reply and applied no second time.
///
/// Counted once per delivery, when its answer is final: a batch that fails and is handled
/// again command by command counts only the second time.
#[derive(Debug, Clone)]
pub struct Duplicates {
    participant: KeyValue,
    duplicates: Counter<u64>,
}

impl Duplicates {
    /// The counter on the process's meter (a no-op until telemetry is installed).
    pub fn new(participant: &'static str) -> Self {
        Duplicates {
            participant: KeyValue::new("participant", participant),
            duplicates: saga_telemetry::metrics::meter()
                .u64_counter("saga.participant.duplicates")
                .with_description(
                    "Commands whose message id was in the inbox already: answered with the recorded reply, applied no second time",
                )
                .build(),
        }
    }

    /// Counts one duplicate of `command` answered from the inbox.
    pub fn count(&self, command: &str) {
        self.duplicates.add(
            1,
            &[
                self.participant.clone(),
                KeyValue::new("command", command.to_string()),
            ],
        );
    }
}

/// Counts the inbox entries a participant pruned past its inbox window.
#[derive(Debug, Clone)]
pub struct Pruned {
    participant: KeyValue,
    pruned: Counter<u64>,
}

impl Pruned {
    /// The counter on the process's meter (a no-op until telemetry is installed).
    pub fn new(participant: &'static str) -> Self {
        Pruned {
            participant: KeyValue::new("participant", participant),
            pruned: saga_telemetry::metrics::meter()
                .u64_counter("saga.participant.inbox.pruned")
                .with_description(
                    "Inbox entries deleted once past the inbox window and twice the clock skew",
                )
                .build(),
        }
    }

    /// Counts `n` entries pruned.
    pub fn count(&self, n: u64) {
        self.pruned.add(n, std::slice::from_ref(&self.participant));
    }
}

/// Reads the lag of a participant's command consumer when `/metrics` is scraped.
#[derive(Debug, Clone)]
pub struct Lag {
    js: jetstream::Context,
    consumer: String,
    pending: Gauge<u64>,
    ack_pending: Gauge<u64>,
}

impl Lag {
    /// The lag of participant `participant`'s command consumer.
    pub fn new(js: jetstream::Context, participant: &str) -> Self {
        let meter = saga_telemetry::metrics::meter();
        Lag {
            js,
            consumer: crate::participant::consumer_name(participant),
            pending: meter
                .u64_gauge("saga.consumer.pending")
                .with_description("Messages not yet delivered to the consumer (its lag)")
                .build(),
            ack_pending: meter
                .u64_gauge("saga.consumer.ack_pending")
                .with_description("Messages delivered to the consumer and not yet acknowledged")
                .build(),
        }
    }

    /// Records the consumer's current lag; a failed read keeps the last value.
    async fn sample(&self) {
        let info = async {
            self.js
                .get_stream_no_info(subjects::COMMANDS_STREAM)
                .await?
                .consumer_info(&self.consumer)
                .await
                .map_err(async_nats::Error::from)
        };
        match tokio::time::timeout(Duration::from_secs(2), info).await {
            Ok(Ok(info)) => {
                let consumer = [KeyValue::new("consumer", self.consumer.clone())];
                self.pending.record(info.num_pending, &consumer);
                self.ack_pending
                    .record(info.num_ack_pending as u64, &consumer);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the consumer's lag"),
            Err(_) => tracing::warn!("reading the consumer's lag timed out"),
        }
    }
}

/// `GET /metrics`: every metric of this process in the Prometheus text format.
pub fn router(lag: Lag) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(lag)
}

async fn metrics(State(lag): State<Lag>) -> impl IntoResponse {
    lag.sample().await;
    (
        [(CONTENT_TYPE, saga_telemetry::metrics::CONTENT_TYPE)],
        saga_telemetry::metrics::render(),
    )
}
