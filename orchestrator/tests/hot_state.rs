//! The runtime's hot state against the store: a cached state decides only through an append
//! that the store's optimistic concurrency accepts. Two orchestrators share one store (as two
//! replicas would) over a real nats-server; replies are handed to them directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_orchestrator::runtime::{Handled, Options, Orchestrator, Registry};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::transport::JetStream;
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use saga_testkit::NatsServer;
use serde_json::json;
use uuid::Uuid;

async fn orchestrator(nats: &NatsServer, store: MemoryStore) -> Orchestrator<MemoryStore> {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    Orchestrator::new(store, transport, registry, Options::default())
}

fn succeeded(command: &CommandEnvelope) -> ReplyEnvelope {
    let output = json!({"customer_id": "c-1", "amount": 500, "reserved": 500, "order_id": 1});
    ReplyEnvelope::answering(command, Outcome::Succeeded { output }, Timestamp::now())
}

async fn in_flight(o: &Orchestrator<MemoryStore>, saga_id: Uuid) -> CommandEnvelope {
    let loaded = o.load(saga_id).await.unwrap();
    let mut commands = loaded.state.in_flight();
    let command = commands.next().cloned().expect("a command in flight");
    assert!(
        commands.next().is_none(),
        "place_order runs one step at a time"
    );
    command
}

async fn count(o: &Orchestrator<MemoryStore>, saga_id: Uuid, event_type: &str) -> usize {
    let loaded = o.load(saga_id).await.unwrap();
    loaded
        .events
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

#[tokio::test]
async fn a_stale_hot_state_loses_its_append_and_decides_again_on_the_store() {
    let nats = NatsServer::start().unwrap();
    let store = MemoryStore::new();
    let a = orchestrator(&nats, store.clone()).await;
    let b = orchestrator(&nats, store).await;
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = a.start("place_order", input, None).await.unwrap().saga_id;

    // Given a holds the new saga hot, b moves it on behind a's back.
    assert_eq!(a.hot_sagas().len(), 1);
    let first = in_flight(&a, saga_id).await;
    assert_eq!(
        b.handle_reply(&succeeded(&first)).await.unwrap(),
        Handled::Applied
    );

    // When the same reply reaches a, whose cached state still waits for it,
    let handled = a.handle_reply(&succeeded(&first)).await.unwrap();

    // then a's append loses, a reloads, and finds the reply already recorded.
    assert_eq!(handled, Handled::Unchanged);
    assert_eq!(count(&a, saga_id, "StepSucceeded").await, 1);

    // And a goes on from the stored state: the next step's reply applies, once.
    let second = in_flight(&a, saga_id).await;
    assert_ne!(second.step, first.step);
    assert_eq!(
        a.handle_reply(&succeeded(&second)).await.unwrap(),
        Handled::Applied
    );
    assert_eq!(count(&a, saga_id, "StepSucceeded").await, 2);
}

#[tokio::test]
async fn a_duplicate_reply_on_a_hot_saga_changes_nothing() {
    let nats = NatsServer::start().unwrap();
    let a = orchestrator(&nats, MemoryStore::new()).await;
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = a.start("place_order", input, None).await.unwrap().saga_id;
    let first = in_flight(&a, saga_id).await;
    let version = a.load(saga_id).await.unwrap().record.version;

    assert_eq!(
        a.handle_reply(&succeeded(&first)).await.unwrap(),
        Handled::Applied
    );
    let after_first = a.load(saga_id).await.unwrap().record.version;
    assert!(after_first > version);

    assert_eq!(
        a.handle_reply(&succeeded(&first)).await.unwrap(),
        Handled::Unchanged
    );
    assert_eq!(a.load(saga_id).await.unwrap().record.version, after_first);
}

#[tokio::test]
async fn without_hot_state_every_reply_is_decided_on_the_store() {
    let nats = NatsServer::start().unwrap();
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    let options = Options {
        hot_sagas: 0,
        ..Options::default()
    };
    let a = Orchestrator::new(MemoryStore::new(), transport, registry, options);
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = a.start("place_order", input, None).await.unwrap().saga_id;
    let first = in_flight(&a, saga_id).await;
    assert_eq!(
        a.handle_reply(&succeeded(&first)).await.unwrap(),
        Handled::Applied
    );
    assert_eq!(count(&a, saga_id, "StepSucceeded").await, 1);
    assert_eq!(a.hot_sagas().len(), 0);
}
