//! Definitions stored with the sagas, through the runtime: a saga runs on the version it
//! started with after its file is gone (as after a restart with a new directory), and a file
//! that reuses a stored (name, version) for other content is refused at start-up and on
//! reload. Orchestrators share one in-memory store, as a restarted process shares the
//! database; a real nats-server takes their commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::{Event, Input};
use saga_orchestrator::runtime::{Handled, LoadError, Options, Orchestrator, Refusal, Registry};
use saga_orchestrator::store::{
    DefinitionStore, EventLog, MemoryStore, NewDefinition, NewEvent, NewSaga,
};
use saga_orchestrator::transport::JetStream;
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp};
use saga_testkit::NatsServer;
use serde_json::json;
use std::path::Path;
use uuid::Uuid;

fn v1() -> String {
    std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml")).unwrap()
}

/// Version 2: the same steps with another description, so its content differs.
fn v2() -> String {
    v1().replace("version = 1", "version = 2").replace(
        "Reserve credit, create",
        "Version 2: reserve credit, create",
    )
}

/// A definitions directory with the catalogue and `files`.
fn sagas_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let catalogue = saga_testkit::workspace_root().join("sagas/participants.toml");
    std::fs::copy(catalogue, dir.path().join("participants.toml")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// An orchestrator over `dir` and `store`, not yet checked against the store.
async fn unchecked(
    nats: &NatsServer,
    store: &MemoryStore,
    dir: &Path,
) -> Orchestrator<MemoryStore> {
    let registry = Registry::load_dir(dir).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    let options = Options {
        sagas_dir: dir.to_path_buf(),
        ..Options::default()
    };
    Orchestrator::new(store.clone(), transport, registry, options)
}

/// An orchestrator as `Orchestrator::open` makes one: its definitions recorded in the store.
async fn opened(nats: &NatsServer, store: &MemoryStore, dir: &Path) -> Orchestrator<MemoryStore> {
    let o = unchecked(nats, store, dir).await;
    o.record_definitions().await.unwrap();
    o
}

fn succeeded(command: &CommandEnvelope) -> ReplyEnvelope {
    let output = json!({"reserved": 500, "order_id": "o-1", "status": "approved"});
    ReplyEnvelope::answering(command, Outcome::Succeeded { output }, Timestamp::now())
}

async fn in_flight(o: &Orchestrator<MemoryStore>, saga_id: Uuid) -> CommandEnvelope {
    let loaded = o.load(saga_id).await.unwrap();
    loaded
        .state
        .in_flight()
        .next()
        .cloned()
        .expect("a command in flight")
}

/// The `definition_hash` the saga's SagaStarted recorded.
async fn started_hash(o: &Orchestrator<MemoryStore>, saga_id: Uuid) -> Option<String> {
    o.load(saga_id).await.unwrap().state.definition_hash
}

#[tokio::test]
async fn a_saga_runs_on_its_stored_version_after_its_file_is_gone() {
    let nats = NatsServer::start().unwrap();
    let store = MemoryStore::new();
    let first = sagas_dir(&[("place_order.toml", &v1())]);
    let before = opened(&nats, &store, first.path()).await;
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = before
        .start("place_order", input.clone(), None)
        .await
        .unwrap()
        .saga_id;
    let stored_v1 = store.definition("place_order", 1).await.unwrap().unwrap();
    assert_eq!(stored_v1.source, v1(), "the file's text is stored as it is");
    assert_eq!(
        started_hash(&before, saga_id).await.as_ref(),
        Some(&stored_v1.hash)
    );

    // Given a restart on a directory that holds version 2 only,
    let second = sagas_dir(&[("place_order.toml", &v2())]);
    let after = opened(&nats, &store, second.path()).await;
    assert!(after.registry().get("place_order", 1).is_none());

    // a timer firing for the version 1 saga is handled, not refused,
    assert_eq!(
        after.handle(saga_id, Input::Tick).await.unwrap(),
        Handled::Unchanged
    );
    let restored = after.registry();
    let entry = restored
        .entry("place_order", 1)
        .expect("restored from the store");
    assert_eq!(
        (entry.file.as_deref(), entry.definition.hash.as_str()),
        (None, stored_v1.hash.as_str())
    );

    // and its replies run it to the end on version 1's three steps.
    let mut steps = Vec::new();
    for _ in 0..3 {
        let command = in_flight(&after, saga_id).await;
        steps.push(command.step.clone());
        assert_eq!(
            after.handle_reply(&succeeded(&command)).await.unwrap(),
            Handled::Applied
        );
    }
    assert_eq!(steps, ["reserve_credit", "create_order", "approve_order"]);
    let done = after.load(saga_id).await.unwrap();
    assert_eq!(done.state.status.as_str(), "completed");
    assert_eq!(done.record.definition_version, 1);

    // New sagas start on the loaded version 2 only: version 1 has no file here.
    let new = after
        .start("place_order", input.clone(), None)
        .await
        .unwrap()
        .saga_id;
    let new = after.load(new).await.unwrap();
    assert_eq!(new.record.definition_version, 2);
    let stored_v2 = store.definition("place_order", 2).await.unwrap().unwrap();
    assert_eq!(new.state.definition_hash.as_ref(), Some(&stored_v2.hash));
    assert!(
        after
            .start_version("place_order", Some(1), input, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_saga_whose_version_is_neither_loaded_nor_stored_is_refused() {
    let nats = NatsServer::start().unwrap();
    let store = MemoryStore::new();
    let dir = sagas_dir(&[("place_order.toml", &v1())]);
    let o = opened(&nats, &store, dir.path()).await;
    let saga_id = Uuid::new_v4();
    let started = Event::SagaStarted {
        name: "place_order".into(),
        definition_version: 7,
        definition_hash: None,
        input: json!({}),
        deadline_at: None,
        trace_context: None,
    };
    let saga = NewSaga {
        saga_id,
        name: "place_order".into(),
        definition_version: 7,
        idempotency_key: None,
        input_digest: "{}".into(),
        tags: Vec::new(),
        deadline_at: None,
    };
    let event = NewEvent {
        event_type: started.type_name().into(),
        schema_version: started.schema_version(),
        payload: started.to_payload(),
        occurred_at: Timestamp(1),
    };
    store
        .create(saga, vec![event], "running", Timestamp(1))
        .await
        .unwrap();
    assert_eq!(
        o.handle(saga_id, Input::Tick).await.unwrap(),
        Handled::Refused(Refusal::UnknownDefinition {
            saga_id,
            name: "place_order".into()
        })
    );
}

#[tokio::test]
async fn a_file_that_changes_a_stored_version_is_refused_at_start_up_and_on_reload() {
    let nats = NatsServer::start().unwrap();
    let store = MemoryStore::new();
    let dir = sagas_dir(&[("place_order.toml", &v1())]);
    let running = opened(&nats, &store, dir.path()).await;
    let stored = store.definition("place_order", 1).await.unwrap().unwrap();

    // Version 1 edited in place, and a new version 2 beside it.
    let edited = v1().replace("timeout = \"10s\"", "timeout = \"20s\"");
    std::fs::write(dir.path().join("place_order.toml"), &edited).unwrap();
    std::fs::write(dir.path().join("place_order.v2.toml"), v2()).unwrap();

    let check = |e: LoadError| {
        let LoadError::Invalid(errors) = e else {
            panic!("not a diagnostic: {e}");
        };
        assert_eq!(errors.0.len(), 1, "{errors}");
        let e = &errors.0[0];
        assert!(e.file.ends_with("place_order.toml"), "{e}");
        // The `version = 1` line of sagas/place_order.toml.
        assert_eq!((e.line, e.column), (6, 11), "{e}");
        assert!(e.message.contains("differs from the stored version"), "{e}");
        assert!(e.message.contains("bump the version"), "{e}");
    };
    // On reload nothing changes: not the registry, not the store (version 2 is not stored).
    check(running.reload().await.unwrap_err());
    assert_eq!(
        running.registry().get("place_order", 1).unwrap().hash,
        stored.hash
    );
    assert!(running.registry().get("place_order", 2).is_none());
    assert_eq!(store.definition("place_order", 2).await.unwrap(), None);
    assert_eq!(
        store.definition("place_order", 1).await.unwrap(),
        Some(stored.clone())
    );

    // At start-up the orchestrator refuses to run.
    let restarted = unchecked(&nats, &store, dir.path()).await;
    check(restarted.record_definitions().await.unwrap_err());

    // Comments and spacing are not content: the original with a comment loads again.
    let commented = format!(
        "# reviewed\n{}",
        v1().replace("amount = \"integer\"", "amount   =   \"integer\"")
    );
    std::fs::write(dir.path().join("place_order.toml"), commented).unwrap();
    let registry = running.reload().await.unwrap();
    assert_eq!(registry.get("place_order", 1).unwrap().hash, stored.hash);
    assert!(registry.get("place_order", 2).is_some());
    assert!(store.definition("place_order", 2).await.unwrap().is_some());
}

#[tokio::test]
async fn a_version_stored_under_an_older_builds_hash_keeps_it() {
    let nats = NatsServer::start().unwrap();
    let store = MemoryStore::new();
    // As if an older build had hashed the same text otherwise.
    store
        .put_definition(NewDefinition {
            name: "place_order".into(),
            version: 1,
            hash: "0ld".into(),
            source: v1(),
            stored_at: Timestamp(1),
        })
        .await
        .unwrap();
    let dir = sagas_dir(&[("place_order.toml", &v1())]);
    let o = opened(&nats, &store, dir.path()).await;
    assert_eq!(o.registry().get("place_order", 1).unwrap().hash, "0ld");
    let input = json!({"customer_id": "c-1", "amount": 500});
    let saga_id = o.start("place_order", input, None).await.unwrap().saga_id;
    assert_eq!(started_hash(&o, saga_id).await.as_deref(), Some("0ld"));
}
