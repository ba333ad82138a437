//! Retention over real processes, with windows of seconds: finished sagas move to the
//! archive and the participants prune their inboxes, while the API, `saga status` and the
//! feed show what they showed before; a copy of a command delivered after its inbox entry
//! was pruned is dead-lettered, not applied a second time.

use crate::system::{Backend, Options, REVIEW_LIMIT, Service, System};
use crate::telemetry::sample;
use async_nats::jetstream::{self, message::PublishMessage};
use saga_protocol::{CommandEnvelope, subjects};
use saga_testkit::wait_for;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

/// Every event of the feed, from its start, through `GET /v1/events`.
async fn feed(system: &System) -> Value {
    let url = format!("{}/v1/events?after=0&limit=1000", system.api);
    let resp = reqwest::get(&url).await.expect("GET /v1/events");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.expect("feed json")
}

async fn metric(system: &System, service: Service, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&system.metrics(service).await, name, labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_sagas_are_archived_and_inboxes_pruned_and_nothing_applies_twice() {
    let options = Options {
        // Long enough that no command is republished while the test reads the stream.
        republish_after: "1h",
        ..Options::with_env(&[
            ("SAGA_RETENTION", "1s"),
            ("SAGA_IDEMPOTENCY_WINDOW", "1s"),
            ("SAGA_INBOX_WINDOW", "2s"),
            ("SAGA_MAX_CLOCK_SKEW", "0s"),
        ])
    };
    let system = System::start_with_options(Backend::Sqlite, options).await;
    let deposit = 10 * REVIEW_LIMIT;
    system.open_account("ret", deposit).await;
    let mut ids = Vec::new();
    for amount in [100, 200, REVIEW_LIMIT + 1] {
        ids.push(system.start_saga("ret", amount).await);
    }
    let statuses = system.wait_terminal(&ids, LONG).await;
    let mut before = HashMap::new();
    for id in &ids {
        before.insert(*id, system.history(*id).await);
    }
    let feed_before = feed(&system).await;

    // Archived by the orchestrator's own sweep: the counter says so, and so does each view.
    wait_for("three sagas archived", LONG, || async {
        let n = metric(&system, Service::Orchestrator, "saga_archived_total", &[]).await;
        (n == 3.0).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    for id in &ids {
        let view = system
            .saga(*id)
            .await
            .expect("an archived saga is still shown");
        assert_eq!(
            view["status"].as_str(),
            Some(statuses[id].as_str()),
            "{view}"
        );
        assert!(view["archived_at"].is_string(), "{view}");
        assert_eq!(system.history(*id).await, before[id], "saga {id}'s events");
        let shown = system.cli(&["status", &id.to_string()]);
        assert!(shown.contains("archived at"), "{shown}");
        let first = system.cli(&["status", &id.to_string(), "--as-of-sequence", "1"]);
        assert!(first.contains("RUNNING"), "{first}");
    }
    assert_eq!(feed(&system).await["events"], feed_before["events"]);

    // Each participant pruned every entry of its inbox: one per command it handled.
    let commands = |participant: &str| -> u64 {
        before
            .values()
            .flatten()
            .filter(|e| e["type"] == "StepStarted" || e["type"] == "CompensationStarted")
            .filter(|e| e["data"]["participant"] == participant)
            .count() as u64
    };
    for (service, participant) in [(Service::Account, "account"), (Service::Order, "order")] {
        let expected = commands(participant) as f64;
        assert!(expected > 0.0, "commands to {participant}");
        wait_for(&format!("{participant}'s inbox pruned"), LONG, || async {
            let labels = [("participant", participant)];
            let n = metric(
                &system,
                service,
                "saga_participant_inbox_pruned_total",
                &labels,
            )
            .await;
            (n == expected).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    }

    // The first command of the run, delivered again under a header of its own (as a copy
    // from before JetStream's deduplication window would be): its entry is gone, it is older
    // than the window, so it is dead-lettered instead of reserving the credit again.
    let js = jetstream::new(system.client.clone());
    let stream = js
        .get_stream(subjects::COMMANDS_STREAM)
        .await
        .expect("commands stream");
    let first = stream.get_raw_message(1).await.expect("first command");
    let copy = CommandEnvelope::decode(&first.payload).expect("a command");
    let sent = js
        .send_publish(
            first.subject.to_string(),
            PublishMessage::build()
                .payload(first.payload.clone())
                .message_id(format!("late-copy.{}", Uuid::new_v4())),
        )
        .await
        .expect("publish")
        .await
        .expect("pub ack");
    assert!(!sent.duplicate, "JetStream stored the copy");
    let letter = wait_for("the late copy dead-lettered", LONG, || async {
        let out = system.cli(&["dlq", "list", "--output", "json"]);
        let rows: Vec<Value> = serde_json::from_str(&out).expect("dlq json");
        rows.into_iter().find(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|r| r.contains(copy.message_id.as_str()))
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("more than the inbox window (2s) ago"),
        "{letter}"
    );
    let orders = system
        .assert_conserved(&HashMap::from([("ret".to_string(), deposit)]))
        .await;
    assert_eq!(orders.get("approved"), Some(&2), "{orders:?}");
}
