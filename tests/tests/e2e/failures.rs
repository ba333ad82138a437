//! Failure semantics end to end: timeouts, retries, late replies, tombstones, stuck sagas
//! and operator actions, dead letters. Real processes, nats-server and databases.

use crate::system::{Backend, Service, System};
use async_nats::jetstream;
use futures::StreamExt;
use saga_protocol::{
    CommandEnvelope, CommandKind, MessageId, Outcome, ReplyEnvelope, SCHEMA_VERSION, Timestamp,
    subjects,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// place_order with 1s timeouts and quick retries, so failures show within seconds.
fn strict(forward_attempts: u32, compensation_attempts: u32) -> String {
    let step = |name: &str, participant: &str, command: &str, extra: &str| {
        format!(
            "[[step]]\nname = \"{name}\"\nparticipant = \"{participant}\"\ncommand = \"{command}\"\ntimeout = \"1s\"\n{extra}\n\
             [step.retry]\nmax_attempts = {forward_attempts}\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n\n"
        )
    };
    format!(
        "[saga]\nname = \"place_order\"\nversion = 1\n\n[input]\ncustomer_id = \"string\"\namount = \"integer\"\n\n\
         [compensation_retry]\nmax_attempts = {compensation_attempts}\ninitial_backoff = \"200ms\"\nmax_backoff = \"1s\"\n\n{}{}{}",
        step(
            "reserve_credit",
            "account",
            "ReserveCredit",
            "compensation = \"ReleaseCredit\""
        ),
        step(
            "create_order",
            "order",
            "CreateOrder",
            "compensation = \"CancelOrder\""
        ),
        step("approve_order", "order", "ApproveOrder", "kind = \"pivot\""),
    )
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_then_late_success_is_compensated_and_nothing_stays_reserved() {
    let mut system = System::start_with(Backend::Sqlite, Some(&strict(2, 20))).await;
    system.open_account("late", 10_000).await;
    system.kill(Service::Account);
    let id = system.start_saga("late", 500).await;
    // Both attempts of ReserveCredit time out: the outcome is unknown, so the saga gives up
    // and sends ReleaseCredit too.
    system.wait_event(id, "SagaFailed", LONG).await;
    system.spawn(Service::Account);
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "compensated");
    let types = system.event_types(id).await;
    assert!(types.contains(&"CommandTimedOut".to_string()), "{types:?}");
    // The account applied ReserveCredit late; its success is recorded, never dropped.
    system.wait_event(id, "LateReplyRecorded", LONG).await;
    let late = system
        .history(id)
        .await
        .into_iter()
        .find(|e| e["type"] == "LateReplyRecorded")
        .unwrap();
    assert_ne!(late["occurred_at"], serde_json::Value::Null);
    assert_ne!(late["recorded_at"], serde_json::Value::Null);
    let deposits = HashMap::from([("late".to_string(), 10_000)]);
    system.assert_conserved(&deposits).await;
    let balance = saga_participants::admin::balance(&system.client, "late")
        .await
        .unwrap();
    assert_eq!((balance.available, balance.reserved), (10_000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_participant_failure_is_retried_with_backoff_then_completes() {
    let mut system = System::start_with(Backend::Postgres, Some(&strict(8, 8))).await;
    system.open_account("retry", 10_000).await;
    system.kill(Service::Order);
    let id = system.start_saga("retry", 500).await;
    system.wait_event(id, "RetryScheduled", LONG).await;
    system.spawn(Service::Order);
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "completed");
    let history = system.history(id).await;
    let retries: Vec<_> = history
        .iter()
        .filter(|e| e["type"] == "RetryScheduled")
        .collect();
    assert!(!retries.is_empty());
    for r in &retries {
        assert!(r["data"]["attempt"].as_u64().unwrap() >= 2, "{r}");
        assert!(r["data"]["retry_at"].as_i64().is_some(), "{r}");
    }
    let orders = saga_participants::admin::orders(&system.client)
        .await
        .unwrap();
    assert_eq!(
        orders.len(),
        1,
        "one order however many attempts: {orders:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_saga_cancelled_by_an_operator_is_compensated_in_reverse_order() {
    // Twenty attempts of each command: the saga keeps trying CreateOrder (and later
    // CancelOrder) for far longer than the test needs to act.
    let mut system = System::start_with(Backend::Sqlite, Some(&strict(20, 20))).await;
    system.open_account("d", 10_000).await;
    // The order service is down: the saga retries CreateOrder with its credit reserved.
    system.kill(Service::Order);
    let id = system.start_saga("d", 300).await;
    system.wait_event(id, "StepSucceeded", LONG).await;
    let out = system.cli(&[
        "cancel",
        &id.to_string(),
        "--reason",
        "the customer withdrew",
        "--by",
        "e2e",
    ]);
    assert!(out.contains("COMPENSATING"), "{out}");
    // The order service comes back: the order (maybe created) is cancelled, then the credit
    // released.
    system.spawn(Service::Order);
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "compensated");
    let saga = system.saga(id).await.unwrap();
    assert_eq!(
        saga["reason"].as_str(),
        Some("cancelled by e2e: the customer withdrew"),
        "{saga}"
    );
    let types = system.event_types(id).await;
    let at = |t: &str| types.iter().position(|e| e == t);
    assert!(at("SagaCancelled") < at("SagaCompensated"), "{types:?}");
    let compensations: Vec<String> = system
        .history(id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "CompensationStarted")
        .map(|e| e["data"]["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        compensations.first().map(String::as_str),
        Some("create_order")
    );
    assert_eq!(
        compensations.last().map(String::as_str),
        Some("reserve_credit")
    );
    let balance = saga_participants::admin::balance(&system.client, "d")
        .await
        .unwrap();
    assert_eq!((balance.available, balance.reserved), (10_000, 0));
    // Ended: a second cancel is refused and says why.
    let (code, problem) = system.operate(id, "cancel", "again").await;
    assert_eq!(code, 409, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_that_keeps_failing_gets_stuck_and_operators_retry_skip_abort() {
    let mut system = System::start_with(Backend::Sqlite, Some(&strict(2, 2))).await;
    for c in ["a", "b", "c"] {
        system.open_account(c, 10_000).await;
    }
    // The order service is down: CreateOrder times out, the saga compensates, and
    // CancelOrder keeps timing out too. The account service goes down as well, so nothing
    // can finish until an operator steps in.
    system.kill(Service::Order);
    let ids = [
        system.start_saga("a", 100).await,
        system.start_saga("b", 100).await,
        system.start_saga("c", 100).await,
    ];
    for id in ids {
        system.wait_event(id, "StepSucceeded", LONG).await;
    }
    system.kill(Service::Account);
    let status = system.wait_terminal(&ids, LONG).await;
    for id in ids {
        assert_eq!(status[&id], "stuck", "saga {id}");
        let saga = system.saga(id).await.unwrap();
        let reason = saga["reason"].as_str().unwrap();
        assert!(
            reason.contains("compensation of `create_order` gave up after 2 attempts"),
            "{reason}"
        );
    }
    // Only a stuck saga can be retried: the API says so for a finished one later.
    system.spawn(Service::Order);
    system.spawn(Service::Account);
    let [a, b, c] = ids;
    let (code, _) = system.operate(a, "retry", "order service is back").await;
    assert_eq!(code, 200);
    let (code, _) = system.operate(b, "skip", "order cancelled by hand").await;
    assert_eq!(code, 200);
    let out = system.cli(&[
        "abort",
        &c.to_string(),
        "--reason",
        "settled with the customer",
    ]);
    assert!(out.contains("ABORTED"), "{out}");
    // Its status lists what the abort left applied: the credit, and the order whose cancel
    // never got through.
    assert!(
        out.contains("left applied (see to them by hand): reserve_credit, create_order"),
        "{out}"
    );
    let status = system.wait_terminal(&ids, LONG).await;
    assert_eq!(
        (
            status[&a].as_str(),
            status[&b].as_str(),
            status[&c].as_str()
        ),
        ("compensated", "compensated", "aborted")
    );
    assert!(
        system
            .event_types(a)
            .await
            .contains(&"OperatorRetried".to_string())
    );
    let skipped = system
        .history(b)
        .await
        .into_iter()
        .find(|e| e["type"] == "StepSkipped")
        .unwrap();
    assert_eq!(
        (
            skipped["data"]["by"]["name"].as_str(),
            skipped["data"]["step"].as_str()
        ),
        (Some("e2e"), Some("create_order"))
    );
    assert!(
        system
            .event_types(c)
            .await
            .contains(&"SagaAborted".to_string())
    );
    let (code, problem) = system.operate(a, "retry", "again").await;
    assert_eq!(code, 409, "{problem}");
    // a and b released their credit; c was aborted with its credit still reserved.
    for customer in ["a", "b"] {
        let balance = saga_participants::admin::balance(&system.client, customer)
            .await
            .unwrap();
        assert_eq!(
            (balance.available, balance.reserved),
            (10_000, 0),
            "{customer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compensation_delivered_before_its_command_leaves_a_tombstone() {
    let system = System::start(Backend::Postgres).await;
    system.open_account("t", 1_000).await;
    let js = jetstream::new(system.client.clone());
    let replies = js.get_stream(subjects::REPLIES_STREAM).await.unwrap();
    let consumer = replies
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: subjects::reply("account"),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut incoming = consumer.messages().await.unwrap();
    let saga_id = Uuid::new_v4();
    let envelope = |kind, command: &str| CommandEnvelope {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::command(saga_id, "reserve_credit", 1, kind),
        saga_id,
        saga_name: "place_order".into(),
        step: "reserve_credit".into(),
        attempt: 1,
        kind,
        participant: "account".into(),
        command: command.into(),
        effect_key: format!("{saga_id}.reserve_credit"),
        payload: json!({"customer_id": "t", "amount": 400}),
        sent_at: Timestamp::now(),
    };
    // The compensation overtakes the command it undoes: it is handled (and answered) before
    // the command is even published.
    let mut outcomes = Vec::new();
    for cmd in [
        envelope(CommandKind::Compensation, "ReleaseCredit"),
        envelope(CommandKind::Forward, "ReserveCredit"),
    ] {
        let subject = subjects::command("account", &cmd.command);
        js.publish(subject, cmd.encode().into())
            .await
            .unwrap()
            .await
            .unwrap();
        loop {
            let msg = tokio::time::timeout(LONG, incoming.next())
                .await
                .expect("replies")
                .unwrap()
                .unwrap();
            let reply = ReplyEnvelope::decode(&msg.payload).unwrap();
            msg.ack().await.unwrap();
            if reply.command_id == cmd.message_id {
                outcomes.push((reply.kind, reply.outcome));
                break;
            }
        }
    }
    assert!(
        matches!(
            outcomes[0],
            (CommandKind::Compensation, Outcome::Succeeded { .. })
        ),
        "{outcomes:?}"
    );
    assert!(
        matches!(
            outcomes[1],
            (CommandKind::Forward, Outcome::Rejected { .. })
        ),
        "{outcomes:?}"
    );
    let balance = saga_participants::admin::balance(&system.client, "t")
        .await
        .unwrap();
    assert_eq!((balance.available, balance.reserved), (1_000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_next_message_is_processed() {
    let system = System::start(Backend::Sqlite).await;
    system.open_account("p", 10_000).await;
    let js = jetstream::new(system.client.clone());
    js.publish(subjects::reply("order"), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A well-formed command from a future version of the protocol.
    let mut future = serde_json::to_value(CommandEnvelope {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::from_raw("future.1"),
        saga_id: Uuid::new_v4(),
        saga_name: "place_order".into(),
        step: "reserve_credit".into(),
        attempt: 1,
        kind: CommandKind::Forward,
        participant: "account".into(),
        command: "ReserveCredit".into(),
        effect_key: "future".into(),
        payload: json!({"customer_id": "p", "amount": 1}),
        sent_at: Timestamp::now(),
    })
    .unwrap();
    future["schema_version"] = json!(99);
    js.publish(
        subjects::command("account", "ReserveCredit"),
        future.to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let id = system.start_saga("p", 100).await;
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "completed");
    let listed = || -> Vec<serde_json::Value> {
        serde_json::from_str(&system.cli(&["dlq", "list", "--output", "json"])).unwrap()
    };
    let dead = saga_testkit::wait_for("two dead letters", LONG, || async {
        let rows = listed();
        (rows.len() == 2).then_some(rows)
    })
    .await
    .unwrap();
    let by_consumer: HashMap<&str, &serde_json::Value> = dead
        .iter()
        .map(|r| (r["consumer"].as_str().unwrap(), r))
        .collect();
    let reply = by_consumer["orchestrator"];
    assert_eq!(reply["original_subject"], "saga.reply.order");
    assert!(
        reply["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid envelope"),
        "{reply}"
    );
    let command = by_consumer["participant-account"];
    assert!(
        command["reason"]
            .as_str()
            .unwrap()
            .contains("schema version 99"),
        "{command}"
    );
    // Replaying sends it back where it came from; still poison, it is dead-lettered again.
    let first = reply["sequence"].as_u64().unwrap();
    let seq = first.to_string();
    let out = system.cli(&["dlq", "replay", &seq]);
    assert!(out.contains("saga.reply.order"), "{out}");
    let again = saga_testkit::wait_for("the replayed letter back in the DLQ", LONG, || async {
        let rows = listed();
        let back = rows
            .iter()
            .any(|r| r["consumer"] == "orchestrator" && r["sequence"].as_u64() != Some(first));
        (rows.len() == 2 && back).then_some(())
    })
    .await;
    again.unwrap();
}
