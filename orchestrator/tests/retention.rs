#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Retention through the runtime, on SQLite and PostgreSQL: finished sagas past their window
//! are archived by the sweep, the API still shows each whole (`GET /v1/sagas/{id}` and its
//! events, the feed), and the sagas in flight at the sweep are left as they were and finish
//! afterwards; a saga created within its idempotency window is not moved.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{answer, play};
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::{Archive, EventLog, ReadModel, SqlStore};
use saga_orchestrator::transport::MemoryTransport;
use saga_protocol::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

type O = Orchestrator<SqlStore, MemoryTransport>;

fn orchestrator(store: &SqlStore, idempotency_window: Duration) -> O {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let options = Options {
        retention: Duration::from_millis(1),
        idempotency_window,
        ..Options::default()
    };
    Orchestrator::new(
        store.clone(),
        MemoryTransport::new(SystemClock),
        registry,
        options,
    )
}

async fn call(o: &O, request: Request<Body>) -> (StatusCode, Value) {
    let response = saga_orchestrator::api::router(o.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn get(o: &O, uri: &str) -> (StatusCode, Value) {
    call(o, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(o: &O, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(o, request).await
}

/// Waits until the clock has passed `at` by more than the 1 ms retention window.
async fn past(at: Timestamp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while Timestamp::now().millis() <= at.millis() + 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clock stands still"
        );
        tokio::task::yield_now().await;
    }
}

async fn finished_sagas_are_archived_and_still_shown(url: &str) {
    let store = SqlStore::open(url, 4).await.unwrap();
    let o = orchestrator(&store, Duration::ZERO);
    let start = |n: u32| {
        let o = o.clone();
        async move {
            let input = json!({"customer_id": format!("c-{n}"), "amount": 5});
            o.start("place_order", input, None).await.unwrap().saga_id
        }
    };
    let mut done = Vec::new();
    for n in 0..3 {
        let id = start(n).await;
        play(&o, id, 10).await;
        done.push(id);
    }
    // In flight at the sweep: one step answered, the next waiting for its participant.
    let waiting = start(9).await;
    assert!(answer(&o, waiting).await);
    let mut shown = Vec::new();
    for id in &done {
        let (status, saga) = get(&o, &format!("/v1/sagas/{id}")).await;
        assert_eq!(
            (status, saga["status"].as_str()),
            (StatusCode::OK, Some("completed"))
        );
        let (_, events) = get(&o, &format!("/v1/sagas/{id}/events")).await;
        shown.push((saga, events));
    }
    let waiting_before = o.load(waiting).await.unwrap();
    assert_eq!(waiting_before.state.status.as_str(), "running");
    let (_, feed_before) = get(&o, "/v1/events?after=0&limit=1000").await;
    let last = store.list(10).await.unwrap()[0].updated_at;
    past(last).await;

    assert_eq!(o.archive_finished().await.unwrap(), 3);
    assert_eq!(
        o.archive_finished().await.unwrap(),
        0,
        "nothing left to move"
    );
    for (id, (saga, events)) in done.iter().zip(&shown) {
        assert!(
            store.load(*id).await.unwrap().is_none(),
            "left the hot tables"
        );
        assert!(store.archived(*id).await.unwrap().is_some());
        let (status, archived) = get(&o, &format!("/v1/sagas/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(archived["archived_at"].is_string(), "{archived}");
        let mut as_archived = archived.clone();
        as_archived.as_object_mut().unwrap().remove("archived_at");
        assert_eq!(&as_archived, saga, "shown as it ended");
        assert_eq!(&get(&o, &format!("/v1/sagas/{id}/events")).await.1, events);
        // Time travel still works on the archived log.
        let (status, first) = get(&o, &format!("/v1/sagas/{id}?as_of_sequence=1")).await;
        assert_eq!(
            (status, first["version"].as_u64()),
            (StatusCode::OK, Some(1))
        );
        // Final: an operator action or a signal is refused with the reason, not "not found".
        let act = json!({"by": "ops", "reason": "too late"});
        for uri in [
            format!("/v1/sagas/{id}/abort"),
            format!("/v1/sagas/{id}/signals/approval"),
        ] {
            let (status, problem) = post(&o, &uri, act.clone()).await;
            assert_eq!(status, StatusCode::CONFLICT, "{uri}: {problem}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.starts_with(&format!("saga {id} is completed and was archived at "))
                    && detail
                        .ends_with("an archived saga is final, nothing more can be done to it"),
                "{detail}"
            );
        }
    }
    assert_eq!(
        get(&o, "/v1/events?after=0&limit=1000").await.1,
        feed_before
    );
    let listed = store.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].saga_id, waiting);

    // The saga in flight was not touched, and finishes.
    let waiting_after = o.load(waiting).await.unwrap();
    assert_eq!(waiting_after.events, waiting_before.events);
    play(&o, waiting, 10).await;
    assert_eq!(
        o.load(waiting).await.unwrap().state.status.as_str(),
        "completed"
    );
    let (status, _) = get(&o, &format!("/v1/sagas/{}", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A saga whose idempotency key is still in its window stays, finished or not.
    let keyed = orchestrator(&store, Duration::from_secs(3_600));
    let input = json!({"customer_id": "k", "amount": 5});
    let id = keyed
        .start("place_order", input.clone(), Some("key-1".into()))
        .await
        .unwrap()
        .saga_id;
    play(&keyed, id, 10).await;
    past(keyed.load(id).await.unwrap().record.updated_at).await;
    // Every saga left was created within the hour: none moves, though both are finished.
    assert_eq!(keyed.archive_finished().await.unwrap(), 0);
    assert!(
        store.load(id).await.unwrap().is_some(),
        "its key still names it"
    );
    assert!(store.load(waiting).await.unwrap().is_some());
    let again = keyed
        .start("place_order", input, Some("key-1".into()))
        .await
        .unwrap();
    assert_eq!((again.saga_id, again.created), (id, false));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_finished_sagas_are_archived_and_still_shown() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    finished_sagas_are_archived_and_still_shown(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finished_sagas_are_archived_and_still_shown() {
    let (pg, url) = saga_testkit::Postgres::with_database("events")
        .await
        .unwrap();
    finished_sagas_are_archived_and_still_shown(&url).await;
    drop(pg);
}
