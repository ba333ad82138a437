//! A saga whose definition is neither loaded nor stored cannot go on: it becomes Stuck with
//! the reason (visible to operators and alerts) instead of staying `running` for good with its
//! replies dead-lettered; once the definition is back, an operator's retry resumes it. Over a
//! real nats-server and the in-memory store; replies are handed to the runtime directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::{OperatorAction, OperatorCommand};
use saga_orchestrator::runtime::{Handled, Options, Orchestrator, Refusal, Registry};
use saga_orchestrator::store::{DefinitionStore, EventLog, MemoryStore, NewEvent, NewSaga};
use saga_orchestrator::transport::JetStream;
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use saga_testkit::NatsServer;
use serde_json::json;

async fn orchestrator(
    nats: &NatsServer,
    store: MemoryStore,
    registry: Registry,
) -> Orchestrator<MemoryStore> {
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    Orchestrator::new(store, transport, registry, Options::default())
}

fn repository() -> Registry {
    Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap()
}

fn succeeded(command: &CommandEnvelope) -> ReplyEnvelope {
    let output = json!({"reserved": 500});
    ReplyEnvelope::answering(command, Outcome::Succeeded { output }, Timestamp::now())
}

async fn the_command_in_flight(o: &Orchestrator<MemoryStore>, saga: uuid::Uuid) -> CommandEnvelope {
    let loaded = o.load(saga).await.unwrap();
    let command = loaded.state.in_flight().next().cloned();
    command.expect("a command in flight")
}

#[tokio::test]
async fn a_saga_whose_definition_is_gone_gets_stuck_and_resumes_when_it_is_back() {
    let nats = NatsServer::start().unwrap();
    // Given a saga in flight, copied into a store that has its log but not its definition (as
    // after a rollout removed the file of a version started before definitions were stored).
    let first = orchestrator(&nats, MemoryStore::new(), repository()).await;
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = first
        .start("place_order", input, None)
        .await
        .unwrap()
        .saga_id;
    let loaded = first.load(saga_id).await.unwrap();
    let bare = MemoryStore::new();
    let saga = NewSaga {
        saga_id,
        name: loaded.record.name.clone(),
        definition_version: loaded.record.definition_version,
        idempotency_key: None,
        input_digest: loaded.record.input_digest.clone(),
        tags: Vec::new(),
        deadline_at: None,
    };
    let events = loaded
        .events
        .iter()
        .map(|e| NewEvent {
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
            occurred_at: e.occurred_at,
        })
        .collect();
    bare.create(saga, events, "running", Timestamp::now())
        .await
        .unwrap();
    assert!(bare.definition("place_order", 1).await.unwrap().is_none());
    let reserve = the_command_in_flight(&first, saga_id).await;

    // When its reply reaches an orchestrator that has no definition of it:
    let without = orchestrator(&nats, bare.clone(), Registry::default()).await;
    let handled = without.handle_reply(&succeeded(&reserve)).await.unwrap();

    // Then the reply is refused (dead-lettered with the reason) and the saga is Stuck with it.
    assert!(
        matches!(handled, Handled::Refused(Refusal::UnknownDefinition { .. })),
        "{handled:?}"
    );
    let stuck = without.load(saga_id).await.unwrap();
    assert_eq!(stuck.record.status, "stuck");
    let reason = stuck.state.reason.clone().unwrap();
    assert!(reason.contains("place_order"), "{reason}");
    // A second input finds it stuck already and records nothing more.
    let again = without.handle_reply(&succeeded(&reserve)).await.unwrap();
    assert!(matches!(again, Handled::Refused(_)), "{again:?}");
    assert_eq!(
        without.load(saga_id).await.unwrap().events.len(),
        stuck.events.len()
    );
    // Retrying while the definition is still missing changes nothing either.
    let retry = || OperatorAction {
        command: OperatorCommand::Retry,
        by: "ops".into(),
        reason: "definition restored".into(),
    };
    let refused = without.operate(saga_id, retry()).await.unwrap();
    assert!(matches!(refused, Handled::Refused(_)), "{refused:?}");

    // When the definition is loaded again, an operator's retry resumes the saga: the command
    // that was in flight goes out again as its next attempt, and its reply moves the saga on.
    let with = orchestrator(&nats, bare, repository()).await;
    assert_eq!(
        with.operate(saga_id, retry()).await.unwrap(),
        Handled::Applied
    );
    let resent = the_command_in_flight(&with, saga_id).await;
    assert_eq!(
        (resent.step.as_str(), resent.attempt),
        ("reserve_credit", 2)
    );
    assert_eq!(
        with.handle_reply(&succeeded(&resent)).await.unwrap(),
        Handled::Applied
    );
    let resumed = with.load(saga_id).await.unwrap();
    assert_eq!(resumed.record.status, "running");
    assert_eq!(
        the_command_in_flight(&with, saga_id).await.step,
        "create_order"
    );
}
