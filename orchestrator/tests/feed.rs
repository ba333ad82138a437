#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The feed of every saga's events on SQLite and PostgreSQL: two stores on one database (two
//! replicas) appending at once while a reader tails the feed, which must see every event
//! once, each position right after the one before; and `GET /v1/events` with its live
//! stream, resumed with `Last-Event-ID`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::{EventLog, NewEvent, NewSaga, SqlStore};
use saga_orchestrator::transport::MemoryTransport;
use saga_protocol::Timestamp;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

const SAGAS_PER_WRITER: usize = 40;
const APPENDS: u64 = 4;
const WRITERS: usize = 4;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_type: "E".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
        occurred_at: Timestamp(1),
    }
}

fn saga() -> NewSaga {
    NewSaga {
        saga_id: Uuid::new_v4(),
        name: "feed".into(),
        definition_version: 1,
        idempotency_key: None,
        input_digest: "sha256:00".into(),
        tags: Vec::new(),
        deadline_at: None,
    }
}

/// Creates sagas and appends to them, one write after another; returns the ids. Every writer
/// starts each saga together with the others (`round`), so each round's writes race, however
/// the threads are scheduled: no writer can be done before another has begun.
async fn write(store: SqlStore, round: std::sync::Arc<tokio::sync::Barrier>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..SAGAS_PER_WRITER {
        round.wait().await;
        let new = saga();
        let id = new.saga_id;
        store
            .create(new, vec![event(0)], "running", Timestamp(1))
            .await
            .unwrap();
        for n in 1..=APPENDS {
            store
                .append(id, n, vec![event(n)], "running", Timestamp(2))
                .await
                .unwrap();
        }
        ids.push(id);
    }
    ids
}

async fn racing_writers_are_read_in_full_and_in_order(url: &str) {
    // Two replicas: two stores, each with its own writer and connections.
    let replicas = [
        SqlStore::open(url, 4).await.unwrap(),
        SqlStore::open(url, 4).await.unwrap(),
    ];
    let total = WRITERS * SAGAS_PER_WRITER * (1 + APPENDS as usize);
    let reader = {
        let store = replicas[0].clone();
        tokio::spawn(async move {
            let (mut after, mut seen, mut pages) = (0u64, Vec::new(), 0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while seen.len() < total {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} of {total} read",
                    seen.len()
                );
                let page = store.feed(after, 37).await.unwrap();
                for event in &page {
                    assert_eq!(event.position, after + 1, "no hole, nothing twice");
                    after = event.position;
                }
                pages += usize::from(!page.is_empty());
                seen.extend(page.into_iter().map(|e| (e.saga_id, e.sequence)));
                tokio::task::yield_now().await;
            }
            (seen, pages)
        })
    };
    let round = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| tokio::spawn(write(replicas[i % 2].clone(), round.clone())))
        .collect();
    let mut replica_of = std::collections::HashMap::new();
    for (i, writer) in writers.into_iter().enumerate() {
        for id in writer.await.unwrap() {
            replica_of.insert(id, i % 2);
        }
    }
    let (seen, pages) = reader.await.unwrap();
    assert!(pages > 1, "the reader tailed the feed while it was written");
    // Every event of every saga, once.
    let events: HashSet<(Uuid, u64)> = seen.iter().copied().collect();
    assert_eq!((events.len(), seen.len()), (total, total));
    assert!(events.iter().all(|(id, _)| replica_of.contains_key(id)));
    // And the writes did race: the two replicas' commits interleave in the feed. Each round
    // holds writes of both, so the feed turns from one to the other at least once a round.
    let turns = seen
        .windows(2)
        .filter(|w| replica_of[&w[0].0] != replica_of[&w[1].0])
        .count();
    assert!(
        turns >= SAGAS_PER_WRITER,
        "the replicas took turns {turns} times"
    );
    for store in &replicas {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_feed_under_racing_writers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    racing_writers_are_read_in_full_and_in_order(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_feed_under_racing_writers() {
    let (pg, url) = saga_testkit::Postgres::with_database("events")
        .await
        .unwrap();
    racing_writers_are_read_in_full_and_in_order(&url).await;
    drop(pg);
}

type O = Orchestrator<SqlStore, MemoryTransport>;

async fn get(o: &O, uri: &str, last_event_id: Option<&str>) -> axum::response::Response {
    let mut request = Request::get(uri);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    saga_orchestrator::api::router(o.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn json(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Reads server-sent events from `body` until `n` of them came: each one's `id` and data.
async fn sse(body: Body, n: usize) -> Vec<(u64, Value)> {
    let mut stream = body.into_data_stream();
    let (mut text, mut events) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while events.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events in time")
            .expect("the stream stays open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(str::to_string))
            };
            if let (Some(id), Some(data)) = (field("id: "), field("data: ")) {
                assert_eq!(field("event: ").as_deref(), Some("saga_event"), "{frame}");
                events.push((id.parse().unwrap(), serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_is_paged_and_streamed_and_resumed_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let o = Orchestrator::new(
        SqlStore::open(&url, 4).await.unwrap(),
        MemoryTransport::new(SystemClock),
        registry,
        Options::default(),
    );
    let start = |customer: &'static str| {
        let o = o.clone();
        async move {
            let input = json!({"customer_id": customer, "amount": 5});
            o.start("place_order", input, None).await.unwrap().saga_id
        }
    };
    let first = start("ada").await;
    let second = start("bob").await;

    // Paged: every event, in position order, each with its saga.
    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let (status, page) =
            json(get(&o, &format!("/v1/events?after={after}&limit=3"), None).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            assert_eq!(
                page["next"], after,
                "with nothing newer, read on from the same place"
            );
            assert_eq!(page["head"], after, "the last position committed");
            break;
        }
        after = page["next"].as_u64().unwrap();
        all.extend(events);
    }
    let positions: Vec<u64> = all
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(all[0]["saga_id"], first.to_string());
    assert_eq!(all[0]["type"], "SagaStarted");
    assert!(all.iter().any(|e| e["saga_id"] == second.to_string()));
    let so_far = all.len();

    // Streamed: what is there, then what commits after the client connected.
    let response = get(&o, "/v1/events/stream", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let third = start("cy").await;
    let streamed = sse(response.into_body(), so_far + 2).await;
    let ids: Vec<u64> = streamed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=so_far as u64 + 2).collect::<Vec<_>>());
    assert_eq!(streamed[so_far].1["saga_id"], third.to_string());
    assert_eq!(streamed[so_far].1["type"], "SagaStarted");

    // A client that reconnects with the last id it got misses nothing and sees nothing twice.
    let last = so_far as u64 + 1;
    let response = get(&o, "/v1/events/stream?after=0", Some(&last.to_string())).await;
    let resumed = sse(response.into_body(), 1).await;
    assert_eq!(resumed[0].0, last + 1);

    for (uri, detail) in [
        ("/v1/events?limit=0", "use 1 to 1000"),
        ("/v1/events?after=-1", "after=<the last position handled>"),
        ("/v1/events/stream?limit=5", "takes no `limit`"),
    ] {
        let (status, problem) = json(get(&o, uri, None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{uri}: {problem}"
        );
    }
    let (status, problem) = json(get(&o, "/v1/events/stream", Some("x")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}
