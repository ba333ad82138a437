//! A log an earlier build wrote (version 1 events, stored as they were) is loaded, replayed and
//! shown in the newest shape by the runtime and the HTTP API, on every store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::{EventStore, NewEvent, NewSaga};
use saga_orchestrator::transport::MemoryTransport;
use saga_protocol::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// A row of the fixture: a stored event as version 1 wrote it.
#[derive(Deserialize)]
struct Row {
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u32,
    payload: Value,
    occurred_at: i64,
}

async fn call<S: EventStore>(
    o: &Orchestrator<S, MemoryTransport>,
    uri: &str,
) -> (StatusCode, Value) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = saga_orchestrator::api::router(o.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn get<S: EventStore>(o: &Orchestrator<S, MemoryTransport>, uri: &str) -> Value {
    let (status, body) = call(o, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

fn new_saga(saga_id: Uuid) -> NewSaga {
    NewSaga {
        saga_id,
        name: "place_order".into(),
        definition_version: 1,
        idempotency_key: None,
        input_digest: "{}".into(),
        tags: Vec::new(),
        deadline_at: None,
    }
}

fn new_event(r: &Row) -> NewEvent {
    NewEvent {
        event_type: r.event_type.clone(),
        schema_version: r.schema_version,
        payload: r.payload.clone(),
        occurred_at: Timestamp(r.occurred_at),
    }
}

pub async fn a_version_1_log_is_replayed_and_shown_in_the_newest_shape<S: EventStore>(store: S) {
    // Given the stored log of a saga aborted by an operator, as version 1 wrote it.
    let rows: Vec<Row> =
        serde_json::from_str(include_str!("../../core/tests/fixtures/v1_aborted.json")).unwrap();
    assert!(rows.iter().all(|r| r.schema_version == 1));
    let saga_id = Uuid::new_v4();
    let events = rows.iter().map(new_event).collect();
    store
        .create(new_saga(saga_id), events, "aborted", Timestamp(1_000))
        .await
        .unwrap();
    // And a saga whose last event a newer build wrote (a version this build does not know).
    let newer_id = Uuid::new_v4();
    let mut newer: Vec<NewEvent> = rows.iter().map(new_event).collect();
    if let Some(last) = newer.last_mut() {
        last.schema_version = 3;
    }
    store
        .create(new_saga(newer_id), newer, "aborted", Timestamp(1_000))
        .await
        .unwrap();
    let o = Orchestrator::new(
        store,
        MemoryTransport::new(SystemClock),
        Registry::default(),
        Options::default(),
    );

    // When the runtime loads it, it replays to where it ended.
    let loaded = o.load(saga_id).await.unwrap();
    assert_eq!(loaded.state.status, saga_core::Status::Aborted);

    // And the API shows it: the status with its reason, and the history with each event's
    // stored version and its data in the newest shape.
    let view = get(&o, &format!("/v1/sagas/{saga_id}")).await;
    assert_eq!(view["status"], "aborted", "{view}");
    assert_eq!(
        view["reason"], "aborted by ops: handled outside the system",
        "{view}"
    );
    let history = get(&o, &format!("/v1/sagas/{saga_id}/events")).await;
    let aborted = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "SagaAborted")
        .unwrap_or_else(|| panic!("no SagaAborted in {history}"));
    assert_eq!(aborted["schema_version"], 1, "{aborted}");
    assert_eq!(
        aborted["data"],
        json!({"by": {"name": "ops"}, "reason": "handled outside the system"})
    );
    assert_eq!(history.as_array().unwrap().len(), rows.len());

    // The newer build's saga is not guessed at: its status names the event and both versions,
    // and its history shows that event as it is stored.
    let (status, problem) = call(&o, &format!("/v1/sagas/{newer_id}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{problem}");
    assert_eq!(
        problem["detail"],
        format!(
            "saga {newer_id}: saga event SagaAborted has schema version 3, newer than this \
             build reads (up to 2): it was written by a newer build"
        )
    );
    let history = get(&o, &format!("/v1/sagas/{newer_id}/events")).await;
    let last = history.as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["schema_version"], 3);
    assert_eq!(
        last["data"],
        json!({"by": "ops", "reason": "handled outside the system"})
    );
}
