//! The runtime on tokio's paused clock, against the in-memory store and transport: no
//! nats-server, no database, no real time. The test plays the participant through the
//! transport, and the clock moves only when every task waits on a timer, so timeouts,
//! retries, deadlines and recovery fall due at exactly the times the definition says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_orchestrator::clock::{Clock, TokioClock};
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::{EventLog, MemoryStore, ReadModel};
use saga_orchestrator::transport::MemoryTransport;
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Two steps: `debit` (undone by `refund`) retried twice after a timeout, with a backoff of
/// 2 s then 4 s; `credit` waits ten minutes and is never retried. The saga has five minutes.
const TRANSFER: &str = r#"
[saga]
name = "transfer"
version = 1
deadline = "5m"

[input]
amount = "integer"

[[step]]
name = "debit"
participant = "bank"
command = "Debit"
compensation = "Refund"
timeout = "10s"
[step.retry]
max_attempts = 3
initial_backoff = "2s"
max_backoff = "8s"
multiplier = 2.0
jitter = 0.0

[[step]]
name = "credit"
participant = "bank"
command = "Credit"
timeout = "10m"
[step.retry]
max_attempts = 1
"#;

/// When the clock starts: any fixed time will do.
const EPOCH: Timestamp = Timestamp(1_800_000_000_000);

/// Far more virtual time than any test needs: a wait that reaches it is a failure.
const DEADLINE: Duration = Duration::from_secs(24 * 3600);

struct Running {
    orchestrator: Orchestrator<MemoryStore, MemoryTransport>,
    transport: MemoryTransport,
    clock: TokioClock,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<saga_orchestrator::runtime::Result<()>>,
    _sagas: tempfile::TempDir,
}

fn orchestrator(
    store: MemoryStore,
    transport: MemoryTransport,
    clock: TokioClock,
) -> (
    Orchestrator<MemoryStore, MemoryTransport>,
    tempfile::TempDir,
) {
    orchestrator_with(store, transport, clock, Options::default())
}

/// An orchestrator with `options`, its definitions directory and failover bound filled in.
fn orchestrator_with(
    store: MemoryStore,
    transport: MemoryTransport,
    clock: TokioClock,
    options: Options,
) -> (
    Orchestrator<MemoryStore, MemoryTransport>,
    tempfile::TempDir,
) {
    let sagas = tempfile::tempdir().unwrap();
    std::fs::write(sagas.path().join("transfer.toml"), TRANSFER).unwrap();
    let registry = Registry::load_dir(sagas.path()).unwrap();
    let options = Options {
        sagas_dir: sagas.path().to_path_buf(),
        failover_after: Duration::from_secs(4),
        ..options
    };
    let o = Orchestrator::new(store, transport, registry, options).with_clock(clock);
    (o, sagas)
}

/// An orchestrator running (its definitions recorded) over `store` and a new transport.
async fn run(store: MemoryStore, clock: TokioClock) -> Running {
    run_with(store, clock, Options::default()).await
}

async fn run_with(store: MemoryStore, clock: TokioClock, options: Options) -> Running {
    let transport = MemoryTransport::new(clock);
    let (orchestrator, sagas) = orchestrator_with(store, transport.clone(), clock, options);
    orchestrator.record_definitions().await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(orchestrator.clone().run(stop.clone().cancelled_owned()));
    Running {
        orchestrator,
        transport,
        clock,
        stop,
        task,
        _sagas: sagas,
    }
}

impl Running {
    async fn start(&self, amount: i64) -> Uuid {
        self.orchestrator
            .start("transfer", json!({ "amount": amount }), None)
            .await
            .unwrap()
            .saga_id
    }

    /// The `n`th command stored (from 1), waiting for it, and when it was stored.
    async fn command(&self, n: usize) -> (CommandEnvelope, Duration) {
        let commands = tokio::time::timeout(DEADLINE, self.transport.wait_for_commands(n))
            .await
            .unwrap_or_else(|_| panic!("command {n} never published"));
        (commands[n - 1].clone(), self.clock.now().since(EPOCH))
    }

    /// Answers `command` as the participant would, and waits until the orchestrator has
    /// acknowledged `acked` replies in all.
    async fn answer(&self, command: &CommandEnvelope, outcome: Outcome, acked: u64) {
        let reply = ReplyEnvelope::answering(command, outcome, self.clock.now());
        self.transport.reply(&reply);
        tokio::time::timeout(DEADLINE, self.transport.wait_for_acked(acked))
            .await
            .expect("the reply is never acknowledged");
    }

    async fn status(&self, saga_id: Uuid) -> String {
        self.orchestrator.load(saga_id).await.unwrap().record.status
    }

    async fn event_types(&self, saga_id: Uuid) -> Vec<String> {
        let (_, events) = self
            .orchestrator
            .store()
            .load(saga_id)
            .await
            .unwrap()
            .unwrap();
        events.into_iter().map(|e| e.event_type).collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn succeeded() -> Outcome {
    Outcome::Succeeded {
        output: json!({ "ok": true }),
    }
}

fn clock() -> TokioClock {
    TokioClock::starting_at(EPOCH)
}

#[tokio::test(start_paused = true)]
async fn a_saga_runs_to_completion_on_the_replies_of_its_participant() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;

    let (debit, at) = running.command(1).await;
    assert_eq!((debit.command.as_str(), debit.attempt), ("Debit", 1));
    assert_eq!(at, Duration::ZERO, "published as the saga starts");
    running.answer(&debit, succeeded(), 1).await;
    let (credit, _) = running.command(2).await;
    assert_eq!(credit.command, "Credit");
    running.answer(&credit, succeeded(), 2).await;

    assert_eq!(running.status(saga_id).await, "completed");
    assert!(running.transport.dead_letters().is_empty());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_step_that_does_not_answer_is_retried_with_backoff_then_compensated() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;

    // Attempt 1 at 0 s times out at 10 s; attempt 2 follows a 2 s backoff, times out at 22 s;
    // attempt 3 follows a 4 s backoff, times out at 36 s, and the step is undone.
    let expected = [(1, 0), (2, 12), (3, 26)];
    for (n, (attempt, at)) in expected.into_iter().enumerate() {
        let (debit, published) = running.command(n + 1).await;
        assert_eq!((debit.command.as_str(), debit.attempt), ("Debit", attempt));
        assert_eq!(published, Duration::from_secs(at), "attempt {attempt}");
    }
    let (refund, at) = running.command(4).await;
    assert_eq!(refund.command, "Refund");
    assert_eq!(at, Duration::from_secs(36));
    running.answer(&refund, succeeded(), 1).await;

    assert_eq!(running.status(saga_id).await, "compensated");
    let timed_out = running
        .event_types(saga_id)
        .await
        .into_iter()
        .filter(|t| t == "CommandTimedOut")
        .count();
    assert_eq!(timed_out, 3);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_deadline_undoes_the_steps_done_when_the_saga_runs_out_of_time() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;
    let (debit, _) = running.command(1).await;
    running.answer(&debit, succeeded(), 1).await;
    let (credit, _) = running.command(2).await;
    assert_eq!(credit.command, "Credit");

    // `credit` may take ten minutes, the saga five: the deadline comes first.
    let (refund, at) = running.command(3).await;
    assert_eq!(refund.command, "Refund");
    assert_eq!(at, Duration::from_secs(300));
    assert_eq!(running.status(saga_id).await, "compensating");
    running.answer(&refund, succeeded(), 2).await;
    assert_eq!(running.status(saga_id).await, "compensated");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_command_left_unpublished_by_a_crash_is_published_again_with_its_id() {
    let store = MemoryStore::new();
    let clock = clock();
    // Given an orchestrator that records a start but cannot publish its command (NATS away)
    // and then dies: the saga is stored, its command nowhere.
    let first = MemoryTransport::new(clock);
    let (crashed, _sagas) = orchestrator(store.clone(), first.clone(), clock);
    crashed.record_definitions().await.unwrap();
    first.set_unavailable(Some("connection refused"));
    let error = crashed
        .start("transfer", json!({ "amount": 100 }), None)
        .await
        .expect_err("the publish fails");
    assert!(error.is_transient(), "{error}");
    assert!(first.commands().is_empty());
    let saga_id = store.list(1).await.unwrap()[0].saga_id;
    let decided = crashed.load(saga_id).await.unwrap();
    let decided = decided.state.in_flight().next().unwrap().message_id.clone();
    drop(crashed);

    // When a replica starts 3 s later, it takes the partitions and recovers their quiet sagas
    // (quiet for half the 4 s failover bound), before the step's timeout at 10 s.
    tokio::time::advance(Duration::from_secs(3)).await;
    let running = run(store, clock).await;
    let (debit, at) = running.command(1).await;
    assert_eq!(debit.message_id, decided, "the same command, same id");
    assert_eq!(debit.attempt, 1);
    assert!(at < Duration::from_secs(10), "recovered at {at:?}");
    running.answer(&debit, succeeded(), 1).await;
    let (credit, _) = running.command(2).await;
    running.answer(&credit, succeeded(), 2).await;
    assert_eq!(running.status(saga_id).await, "completed");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_that_cannot_be_decoded_is_dead_lettered_and_the_next_is_handled() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;
    let (debit, _) = running.command(1).await;

    running
        .transport
        .deliver("saga.reply.bank", b"{\"not\": \"a reply\"}".to_vec());
    running.answer(&debit, succeeded(), 2).await;

    let dead = running.transport.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, b"{\"not\": \"a reply\"}");
    assert!(!dead[0].reason.is_empty());
    let (credit, _) = running.command(2).await;
    assert_eq!(credit.command, "Credit");
    assert_eq!(running.status(saga_id).await, "running");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_over_the_size_limit_is_dead_lettered_unread_and_the_saga_waits() {
    let options = Options {
        max_message: 400,
        ..Options::default()
    };
    let running = run_with(MemoryStore::new(), clock(), options).await;
    let saga_id = running.start(100).await;
    let (debit, _) = running.command(1).await;
    let events = running.event_types(saga_id).await;

    // A true reply to the debit, with an output too large for this orchestrator.
    let large = ReplyEnvelope::answering(
        &debit,
        Outcome::Succeeded {
            output: json!({ "note": "n".repeat(400) }),
        },
        running.clock.now(),
    );
    running.transport.reply(&large);
    tokio::time::timeout(DEADLINE, running.transport.wait_for_acked(1))
        .await
        .expect("the large reply is settled");

    let dead = running.transport.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, large.encode());
    assert_eq!(
        dead[0].reason,
        format!(
            "the message is {} bytes, over this process's limit of 400 bytes \
             (--max-message / SAGA_MAX_MESSAGE)",
            large.encode().len()
        )
    );
    assert_eq!(running.event_types(saga_id).await, events, "not applied");
    // The step is still waiting for its answer; a reply that fits is applied.
    running.answer(&debit, succeeded(), 2).await;
    let (credit, _) = running.command(2).await;
    assert_eq!(credit.command, "Credit");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_reply_is_acknowledged_and_changes_nothing() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;
    let (debit, _) = running.command(1).await;
    running.answer(&debit, succeeded(), 1).await;
    let events = running.event_types(saga_id).await;

    running.answer(&debit, succeeded(), 2).await;

    assert_eq!(running.event_types(saga_id).await, events);
    assert_eq!(running.transport.commands().len(), 2, "debit and credit");
    assert!(running.transport.dead_letters().is_empty());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reply_whose_commands_cannot_be_published_is_retried_and_the_sweep_publishes_them() {
    let running = run(MemoryStore::new(), clock()).await;
    let saga_id = running.start(100).await;
    let (debit, _) = running.command(1).await;

    // The reply is recorded, but the credit it decides cannot be published: the reply is
    // NAKed (not acknowledged) and delivered again once the transport is back.
    running
        .transport
        .set_unavailable(Some("connection refused"));
    let reply = ReplyEnvelope::answering(&debit, succeeded(), running.clock.now());
    running.transport.reply(&reply);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running.transport.acked(), 0, "not acknowledged while away");
    assert!(
        running
            .event_types(saga_id)
            .await
            .contains(&"StepSucceeded".to_string())
    );
    running.transport.set_unavailable(None);
    tokio::time::timeout(DEADLINE, running.transport.wait_for_acked(1))
        .await
        .unwrap();

    // The redelivered reply changes nothing; the quiet sweep publishes the credit.
    let (credit, at) = running.command(2).await;
    assert_eq!(credit.command, "Credit");
    assert!(
        at >= Duration::from_secs(30),
        "swept after republish_after: {at:?}"
    );
    running.answer(&credit, succeeded(), 2).await;
    assert_eq!(running.status(saga_id).await, "completed");
    running.stop().await;
}
