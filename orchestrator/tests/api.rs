//! The HTTP API through the router (no socket), over a real nats-server and the in-memory
//! store, plus one test over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use saga_orchestrator::api::{Role, Tokens, authenticate};
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::transport::JetStream;
use saga_testkit::NatsServer;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

async fn orchestrator(nats: &NatsServer) -> Orchestrator<MemoryStore> {
    orchestrator_with(nats, Options::default()).await
}

/// An orchestrator of the repository's definitions with `options`, on the in-memory store.
async fn orchestrator_with(nats: &NatsServer, options: Options) -> Orchestrator<MemoryStore> {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    Orchestrator::new(MemoryStore::new(), transport, registry, options)
}

async fn call(o: &Orchestrator<MemoryStore>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = saga_orchestrator::api::router(o.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Plays every participant: answers each command of saga `id` with success until it ends.
async fn complete(o: &Orchestrator<MemoryStore>, id: uuid::Uuid) {
    play(o, id, 10).await;
    assert_eq!(o.load(id).await.unwrap().state.status.as_str(), "completed");
}

/// Plays every participant for up to `rounds` rounds: each round answers every command of
/// saga `id` in flight with success.
async fn play(o: &Orchestrator<MemoryStore>, id: uuid::Uuid, rounds: usize) {
    for _ in 0..rounds {
        let loaded = o.load(id).await.unwrap();
        let commands: Vec<_> = loaded.state.in_flight().cloned().collect();
        if commands.is_empty() {
            break;
        }
        for command in &commands {
            let output = json!({"reserved": 500, "order_id": "o-1"});
            let reply = saga_protocol::ReplyEnvelope::answering(
                command,
                saga_protocol::Outcome::Succeeded { output },
                saga_protocol::Timestamp::now(),
            );
            o.handle_reply(&reply).await.unwrap();
        }
    }
}

#[tokio::test]
async fn start_then_read_status_and_history() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let (status, body) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["saga_id"].as_str().unwrap().to_string();
    assert_eq!(body["links"]["self"], format!("/v1/sagas/{id}"));

    let (status, saga) = call(&o, get(&format!("/v1/sagas/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(saga["status"], "running");
    assert_eq!(saga["steps"][0]["name"], "reserve_credit");
    assert_eq!(saga["input"], json!({"customer_id": "c-1", "amount": 500}));

    let (status, events) = call(&o, get(&format!("/v1/sagas/{id}/events"))).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SagaStarted", "StepStarted"]);
    assert_eq!(events[1]["data"]["command"], "ReserveCredit");

    let (status, list) = call(&o, get("/v1/sagas?limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["sagas"][0]["saga_id"], id.as_str());
}

#[tokio::test]
async fn search_pages_by_cursor_and_filters_by_input_field() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let mut started = Vec::new();
    for (customer, amount) in [("alice", 1), ("bob", 2), ("alice", 3)] {
        let body = format!(r#"{{"customer_id":"{customer}","amount":{amount}}}"#);
        let (status, saga) = call(&o, post("/v1/sagas/place_order", &body, None)).await;
        assert_eq!(status, StatusCode::CREATED);
        started.push(saga["saga_id"].as_str().unwrap().to_string());
    }
    let ids = |list: &Value| -> Vec<String> {
        list["sagas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["saga_id"].as_str().unwrap().to_string())
            .collect()
    };

    let (status, alice) = call(&o, get("/v1/sagas?input.customer_id=alice")).await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    let mut got = ids(&alice);
    got.sort();
    let mut want = vec![started[0].clone(), started[2].clone()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(alice["sagas"][0]["name"], "place_order");
    assert_eq!(alice["next_cursor"], Value::Null, "one page holds both");

    let (_, amount) = call(&o, get("/v1/sagas?input.amount=2&status=running")).await;
    assert_eq!(ids(&amount), [started[1].clone()]);
    let (_, none) = call(&o, get("/v1/sagas?status=compensated")).await;
    assert!(ids(&none).is_empty());
    let (_, other) = call(&o, get("/v1/sagas?name=express_order&version=1")).await;
    assert!(ids(&other).is_empty());

    // Pages of one, following next_cursor, list every saga once.
    let mut seen = Vec::new();
    let mut path = "/v1/sagas?limit=1".to_string();
    loop {
        let (status, page) = call(&o, get(&path)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/sagas?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 4, "paging does not end: {seen:?}");
    }
    seen.sort();
    started.sort();
    assert_eq!(seen, started);

    let (status, overview) = call(&o, get("/v1/overview")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["counts"], json!({"running": 3}));
    let per_minute: u64 = overview["started"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 3);

    for (path, detail) in [
        ("/v1/sagas?status=done", "unknown status `done`"),
        ("/v1/sagas?limit=many", "must be a number"),
        ("/v1/sagas?cursor=zzz", "pass the `next_cursor`"),
        ("/v1/sagas?from=yesterday", "use RFC 3339"),
        ("/v1/sagas?customer_id=alice", "input.<field>"),
    ] {
        let (status, problem) = call(&o, get(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn time_travel_replays_a_prefix_of_the_log() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let (_, started) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":5}"#,
            None,
        ),
    )
    .await;
    let id = started["saga_id"].as_str().unwrap();

    let (status, first) = call(&o, get(&format!("/v1/sagas/{id}?as_of_sequence=1"))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["version"], 1);
    assert_eq!(first["status"], "running");
    assert_eq!(first["steps"], json!([]), "before the first step started");
    let (_, second) = call(&o, get(&format!("/v1/sagas/{id}?as_of_sequence=2"))).await;
    assert_eq!(second["steps"][0]["name"], "reserve_credit");
    assert_eq!(second["version"], 2);

    let (_, now) = call(&o, get(&format!("/v1/sagas/{id}"))).await;
    let (status, later) = call(
        &o,
        get(&format!("/v1/sagas/{id}?as_of=2999-01-01T00:00:00Z")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(later["steps"], now["steps"]);

    for (query, want, detail) in [
        ("as_of_sequence=99", StatusCode::NOT_FOUND, "must be 1 to 2"),
        ("as_of_sequence=0", StatusCode::BAD_REQUEST, "starts at 1"),
        (
            "as_of=2000-01-01T00:00:00Z",
            StatusCode::NOT_FOUND,
            "did not exist yet",
        ),
        ("as_of=noon", StatusCode::BAD_REQUEST, "RFC 3339"),
        (
            "as_of_sequence=1&as_of=2999-01-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
            "not both",
        ),
    ] {
        let (status, problem) = call(&o, get(&format!("/v1/sagas/{id}?{query}"))).await;
        assert_eq!(status, want, "{query}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{query}: {problem}"
        );
    }
}

#[tokio::test]
async fn idempotency_key_returns_the_same_saga_and_refuses_another_input() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let input = r#"{"customer_id":"c-1","amount":500}"#;
    let (s1, first) = call(&o, post("/v1/sagas/place_order", input, Some("k-1"))).await;
    let (s2, again) = call(&o, post("/v1/sagas/place_order", input, Some("k-1"))).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(first["saga_id"], again["saga_id"]);
    assert_eq!(again["created"], false);
    let (s3, problem) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":9}"#,
            Some("k-1"),
        ),
    )
    .await;
    assert_eq!(s3, StatusCode::CONFLICT);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("use a new Idempotency-Key"), "{problem}");
    // It names both inputs' digests.
    assert_eq!(detail.matches("sha256:").count(), 2, "{detail}");

    // The same input spelt another way (keys in another order, spaces) is the same input.
    let (status, respelt) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{ "amount": 500, "customer_id": "c-1" }"#,
            Some("k-1"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{respelt}");
    assert_eq!(respelt["saga_id"], first["saga_id"]);

    // The key is scoped by saga name: on another saga it starts that one.
    let (status, other) = call(
        &o,
        post(
            "/v1/sagas/express_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            Some("k-1"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(other["saga_id"], first["saga_id"]);
}

#[tokio::test]
async fn the_overview_counts_every_saga_started_however_many() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    // More sagas in the last half hour than any page of a search holds, a few of them older.
    let now = o.now().millis();
    for n in 0..10_050i64 {
        let at = saga_protocol::Timestamp(now - n * 100);
        let saga = saga_orchestrator::store::NewSaga {
            saga_id: uuid::Uuid::new_v4(),
            name: "place_order".into(),
            definition_version: 1,
            idempotency_key: None,
            input_digest: "sha256:00".into(),
            tags: Vec::new(),
            deadline_at: None,
        };
        let started = saga_orchestrator::store::NewEvent {
            event_type: "SagaStarted".into(),
            schema_version: 1,
            payload: json!({}),
            occurred_at: at,
        };
        use saga_orchestrator::store::EventLog;
        o.store()
            .create(saga, vec![started], "completed", at)
            .await
            .unwrap();
    }
    let (status, overview) = call(&o, get("/v1/overview")).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["total"], 10_050);
    let started: Vec<u64> = overview["started"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    // 100 ms apart, the 10,050 span 16 min 45 s: all within the 30 minutes, 600 a minute.
    assert_eq!(started.iter().sum::<u64>(), 10_050);
    assert!(started.iter().all(|&n| n <= 601), "{started:?}");
}

#[tokio::test]
async fn an_idempotency_key_starts_a_new_saga_once_its_window_has_passed() {
    let nats = NatsServer::start().unwrap();
    // A window of nothing: every key has outlived it by the time it is used again.
    let options = Options {
        idempotency_window: Duration::ZERO,
        ..Options::default()
    };
    let o = orchestrator_with(&nats, options).await;
    let input = r#"{"customer_id":"c-1","amount":500}"#;
    let (s1, first) = call(&o, post("/v1/sagas/place_order", input, Some("k-1"))).await;
    let (s2, second) = call(&o, post("/v1/sagas/place_order", input, Some("k-1"))).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{second}"
    );
    assert_ne!(first["saga_id"], second["saga_id"]);
    // The first saga no longer holds the key; the second does.
    let (_, saga) = call(&o, get(first["links"]["self"].as_str().unwrap())).await;
    assert_eq!(saga["idempotency_key"], Value::Null, "{saga}");
    let (_, saga) = call(&o, get(second["links"]["self"].as_str().unwrap())).await;
    assert_eq!(saga["idempotency_key"], "k-1", "{saga}");
}

#[tokio::test]
async fn bad_requests_get_4xx_with_an_actionable_message() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let cases = [
        (
            post("/v1/sagas/place_order", "{not json", None),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            post("/v1/sagas/place_order", r#"{"customer_id":"c-1"}"#, None),
            StatusCode::BAD_REQUEST,
            "missing input field `amount` (integer)",
        ),
        (
            post(
                "/v1/sagas/place_order",
                r#"{"customer_id":"c-1","amount":"5"}"#,
                None,
            ),
            StatusCode::BAD_REQUEST,
            "input field `amount` must be integer",
        ),
        (
            post("/v1/sagas/no_such_saga", "{}", None),
            StatusCode::NOT_FOUND,
            "no saga definition named `no_such_saga`",
        ),
        (
            get("/v1/sagas/not-a-uuid"),
            StatusCode::BAD_REQUEST,
            "is not a saga id",
        ),
        (
            get("/v1/sagas/6f1c0e6a-0000-4000-8000-000000000000"),
            StatusCode::NOT_FOUND,
            "not found",
        ),
    ];
    for (req, want_status, want_detail) in cases {
        let uri = req.uri().to_string();
        let (status, problem) = call(&o, req).await;
        assert_eq!(status, want_status, "{uri}: {problem}");
        assert_eq!(problem["status"], want_status.as_u16());
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(want_detail), "{uri}: {detail}");
    }
}

/// What axum would answer by itself (a query, path or body its extractors refuse, an unknown
/// route, a method a route lacks, a body over the limit) is a problem like every other error.
#[tokio::test]
async fn every_refusal_is_problem_json_and_bodies_are_bounded() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let limits = saga_orchestrator::api::Limits { max_body: 4096 };
    let big = format!(r#"{{"customer_id":"{}","amount":5}}"#, "c".repeat(8192));
    let toml = |body: Vec<u8>| {
        Request::post("/v1/definitions/validate")
            .header("content-type", "application/toml")
            .body(Body::from(body))
            .unwrap()
    };
    let cases = [
        (
            post("/v1/sagas/place_order?version=true", "{}", None),
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (
            get("/v1/sagas/%FF%FE"),
            StatusCode::BAD_REQUEST,
            "/v1/sagas/%FF%FE",
        ),
        (
            get("/v1/nope"),
            StatusCode::NOT_FOUND,
            "GET /openapi.json lists",
        ),
        (
            Request::delete("/v1/sagas").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "does not take DELETE",
        ),
        (
            toml(vec![0xff, 0xfe, b'\n']),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
        (
            toml(vec![b'#'; 10_000]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "4096 bytes; the orchestrator's --api-max-body or SAGA_API_MAX_BODY",
        ),
        (
            post("/v1/sagas/place_order", &big, None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "SAGA_API_MAX_BODY",
        ),
    ];
    for (req, want_status, want_detail) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = saga_orchestrator::api::router_with(o.clone(), limits)
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), want_status, "{what}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(kind, "application/problem+json", "{what}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let problem: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(problem["status"], want_status.as_u16(), "{what}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(want_detail), "{what}: {detail}");
    }
}

#[tokio::test]
async fn readyz_names_each_check_and_needs_a_definition() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    // Before the loop runs, no reply would reach this replica: not ready, and it says why.
    let (status, report) = call(&o, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{report}");
    assert_eq!(report["checks"]["reply_consumer_pulling"], "not pulling");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(o.clone().run(async {
        let _ = stopped.await;
    }));
    let report = saga_testkit::wait_for("/readyz ready", Duration::from_secs(30), || async {
        let (status, report) = call(&o, get("/readyz")).await;
        (status == StatusCode::OK).then_some(report)
    })
    .await
    .unwrap();
    assert_eq!(
        report,
        json!({"status": "ready", "checks": {
            "database": "ok", "nats": "ok", "definitions": "3 loaded", "reply_consumer_pulling": "ok"
        }})
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let (status, report) = call(&o, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{report}");
    assert_eq!(report["checks"]["reply_consumer_pulling"], "not pulling");

    // Without definitions every start would be refused: not ready, and the body says why.
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    let empty = Orchestrator::new(
        MemoryStore::new(),
        transport,
        Registry::default(),
        Options::default(),
    );
    let (status, report) = call(&empty, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(report["status"], "not ready");
    assert_eq!(report["checks"]["definitions"], "none loaded");
    assert_eq!(report["checks"]["database"], "ok");
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(listener, saga_orchestrator::api::router(o.clone())).into_future(),
    );
    let running = tokio::spawn(o.run(std::future::pending()));
    let http = reqwest::Client::new();
    saga_testkit::wait_for(
        "/readyz 200 over the socket",
        Duration::from_secs(30),
        || async {
            let ready = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .ok()?;
            (ready.status().as_u16() == 200).then_some(())
        },
    )
    .await
    .unwrap();
    let page = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<script src="/ui/app.js">"#)
    );
    let defs: Value = http
        .get(format!("http://{addr}/v1/definitions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let place_order = defs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "place_order")
        .unwrap();
    assert_eq!(
        place_order["steps"],
        json!(["reserve_credit", "create_order", "approve_order"])
    );
    server.abort();
    running.abort();
}

#[tokio::test]
async fn a_token_guards_the_v1_routes_only() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let tokens = Tokens::from_settings(Some("s3cret"), None).unwrap();
    let app = || authenticate(saga_orchestrator::api::router(o.clone()), tokens.clone());
    let send = |req: Request<Body>| async { app().oneshot(req).await.unwrap() };
    let with = |path: &str, auth: &str| {
        Request::get(path)
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap()
    };

    let denied = send(get("/v1/sagas")).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    assert_eq!(denied.headers()["content-type"], "application/problem+json");
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(denied.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    assert_eq!(
        send(with("/v1/sagas", "Bearer wrong")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(with("/metrics", "")).await.status(),
        StatusCode::UNAUTHORIZED,
        "metrics on the API need a token too"
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        assert_eq!(
            send(with("/v1/definitions", &format!("{scheme} s3cret")))
                .await
                .status(),
            StatusCode::OK,
            "{scheme}"
        );
    }
    for open in ["/livez", "/", "/ui/app.js", "/openapi.json"] {
        assert_eq!(send(get(open)).await.status(), StatusCode::OK, "{open}");
    }
    // Open too, and answering for itself: not ready, since no loop pulls replies here.
    assert_eq!(
        send(get("/readyz")).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Each role is let through where it may go and refused (403, naming the role needed) where
/// it may not; an operator action records the caller's name, not the body's `by`.
#[tokio::test]
async fn each_role_may_do_what_it_is_for_and_no_more() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    for (name, role) in [
        ("rita", Role::Read),
        ("oscar", Role::Operate),
        ("ada", Role::Admin),
    ] {
        saga_orchestrator::api::write_token_entry(&file, name, role, &format!("t-{name}"), false)
            .unwrap();
    }
    let tokens = Tokens::from_settings(None, Some(&file)).unwrap();
    let app = authenticate(saga_orchestrator::api::router(o.clone()), tokens);
    let send = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let as_ = |who: &str, method: &str, path: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer t-{who}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, started) = send(as_(
        "oscar",
        "POST",
        "/v1/sagas/place_order",
        r#"{"customer_id":"c-1","amount":500}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["saga_id"].as_str().unwrap().to_string();
    let cancel = format!("/v1/sagas/{id}/cancel");
    let status_path = format!("/v1/sagas/{id}");
    let validate = "[saga]\nname = \"x\"\n";
    // (method, path, body) and the lowest role that may call it.
    let calls: [(&str, &str, &str, Role); 7] = [
        ("GET", "/v1/sagas", "", Role::Read),
        ("GET", &status_path, "", Role::Read),
        ("GET", "/v1/definitions", "", Role::Read),
        ("POST", "/v1/definitions/validate", validate, Role::Read),
        (
            "POST",
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-2","amount":5}"#,
            Role::Operate,
        ),
        ("POST", "/v1/definitions/reload", "", Role::Admin),
        ("DELETE", "/v1/definitions/place_order/999", "", Role::Admin),
    ];
    let mut seen = Vec::new();
    for (who, role) in [
        ("rita", Role::Read),
        ("oscar", Role::Operate),
        ("ada", Role::Admin),
    ] {
        for (method, path, body, needed) in &calls {
            let (status, answer) = send(as_(who, method, path, body)).await;
            if role >= *needed {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{who} {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{who} {method} {path}: {answer}"
                );
                seen.push(answer["detail"].as_str().unwrap().to_string());
            }
        }
    }
    insta::assert_snapshot!(seen.join("\n"));

    // A reader may not act on a saga; an operator may, and is recorded as itself.
    let body = r#"{"by":"mallory","reason":"stop it"}"#;
    let (status, _) = send(as_("rita", "POST", &cancel, body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, saga) = send(as_("oscar", "POST", &cancel, body)).await;
    assert_eq!(status, StatusCode::OK, "{saga}");
    let (_, events) = send(as_("rita", "GET", &format!("/v1/sagas/{id}/events"), "")).await;
    let cancelled = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "SagaCancelled")
        .unwrap_or_else(|| panic!("no SagaCancelled in {events}"));
    assert_eq!(
        cancelled["data"]["by"],
        serde_json::json!({"name": "oscar", "role": "operate"}),
        "the caller and its role are recorded: {cancelled}"
    );
    assert_eq!(cancelled["data"]["reason"], "stop it");
}

#[tokio::test]
async fn cancel_undoes_a_running_saga_and_is_refused_after_its_pivot_and_abort_only_stops_a_stuck_one()
 {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let start = || {
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        )
    };
    let reason = r#"{"by":"ops","reason":"the customer withdrew"}"#;

    // A running saga: abort is refused (it is not stuck), cancel is taken.
    let (_, started) = call(&o, start()).await;
    let id: uuid::Uuid = started["saga_id"].as_str().unwrap().parse().unwrap();
    let (status, problem) = call(&o, post(&format!("/v1/sagas/{id}/abort"), reason, None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    insta::assert_snapshot!(problem["detail"].as_str().unwrap(), @"the saga is running, not stuck: only a stuck saga can be retried, skipped or aborted (cancel a running one to undo it)");
    let (status, saga) = call(&o, post(&format!("/v1/sagas/{id}/cancel"), reason, None)).await;
    assert_eq!(status, StatusCode::OK, "{saga}");
    assert_eq!(saga["status"], "compensating");
    // The reserve in flight is answered; its compensation follows, and the saga ends.
    play(&o, id, 10).await;
    let (_, saga) = call(&o, get(&format!("/v1/sagas/{id}"))).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(saga["reason"], "cancelled by ops: the customer withdrew");

    // A saga whose pivot is sent: cancel is refused with the reason.
    let (_, started) = call(&o, start()).await;
    let id: uuid::Uuid = started["saga_id"].as_str().unwrap().parse().unwrap();
    play(&o, id, 2).await;
    let (status, problem) = call(&o, post(&format!("/v1/sagas/{id}/cancel"), reason, None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("pivot step `approve_order`"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_signal_is_refused_until_its_step_waits_then_taken_once() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let (_, started) = call(
        &o,
        post(
            "/v1/sagas/approved_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        ),
    )
    .await;
    let id: uuid::Uuid = started["saga_id"].as_str().unwrap().parse().unwrap();
    let signal =
        |name: &str, body: &str| post(&format!("/v1/sagas/{id}/signals/{name}"), body, None);
    let approval = r#"{"approved_by":"maria"}"#;
    // Not waiting yet (its credit is being reserved): 409 says so; a name no step awaits: 404.
    let (status, problem) = call(&o, signal("approval", approval)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("has not begun waiting yet")
    );
    let (status, problem) = call(&o, signal("payment", approval)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    // Waiting (both commands answered): a bad payload is 400, a good one is taken.
    play(&o, id, 2).await;
    let (_, saga) = call(&o, get(&format!("/v1/sagas/{id}"))).await;
    let waiting = &saga["steps"][2];
    assert_eq!(
        (waiting["status"].as_str(), waiting["signal"].as_str()),
        (Some("waiting"), Some("approval")),
        "{saga}"
    );
    let (status, problem) = call(&o, signal("approval", "[1]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, answer) = call(&o, signal("approval", approval)).await;
    assert_eq!(
        (status, answer["accepted"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{answer}"
    );
    assert_eq!(answer["saga"]["steps"][2]["output"]["approved_by"], "maria");
    let (status, answer) = call(&o, signal("approval", approval)).await;
    assert_eq!(
        (status, answer["accepted"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{answer}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_says_what_this_server_takes() {
    let validator = std::env::var_os("OPENAPI_SPEC_VALIDATOR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| saga_testkit::workspace_root().join(".venv/bin/openapi-spec-validator"));
    assert!(
        validator.is_file(),
        "openapi-spec-validator is not in .venv/bin: run `make test` (deploy/local/ensure-k8s-tools.sh installs it from PyPI) or set OPENAPI_SPEC_VALIDATOR"
    );
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;

    // Without tokens the document declares no security; with them, bearer on every operation.
    let (_, open) = call(&o, get("/openapi.json")).await;
    assert!(open.get("security").is_none(), "{}", open["security"]);
    assert!(open["components"].get("securitySchemes").is_none());
    let tokens = Tokens::from_settings(Some("t-admin"), None).unwrap();
    let resp = authenticate(saga_orchestrator::api::router(o.clone()), tokens)
        .oneshot(get("/openapi.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the document stays open");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let guarded: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(guarded["security"], json!([{"bearer": []}]));

    // Each saga's start takes its own input, as a JSON Schema of its definition.
    let input = &open["components"]["schemas"]["Input.approved_order"];
    assert_eq!(
        input["required"],
        json!(["amount", "customer_id"]),
        "{input}"
    );
    assert_eq!(
        input["properties"]["amount"],
        json!({"type": "integer", "format": "int64", "minimum": 1})
    );
    assert_eq!(input["x-saga-version"], 1);
    let start = &open["paths"]["/v1/sagas/place_order"]["post"];
    assert_eq!(start["operationId"], "start_place_order");
    assert_eq!(
        start["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Input.place_order"
    );

    // Both are valid OpenAPI 3.1, by the validator made for it.
    let dir = tempfile::tempdir().unwrap();
    for (name, doc) in [("open", &open), ("guarded", &guarded)] {
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{name}"
        );
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, doc.to_string()).unwrap();
        let out = std::process::Command::new(&validator)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let (status, doc) = call(&o, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/v1/sagas",
        "/v1/sagas/{name}",
        "/v1/sagas/{id}",
        "/v1/sagas/{id}/events",
        "/v1/sagas/{id}/{action}",
        "/v1/overview",
        "/v1/definitions",
        "/v1/definitions/reload",
        "/v1/definitions/validate",
        "/v1/definitions/{name}/{version}",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    let params: Vec<&str> = doc["paths"]["/v1/sagas/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "as_of_sequence", "as_of"]);
    let problem = &doc["paths"]["/v1/sagas"]["get"]["responses"]["400"]["content"];
    assert!(problem["application/problem+json"].is_object(), "{problem}");
    let generated = serde_json::to_value(saga_orchestrator::api::openapi()).unwrap();
    assert_eq!(
        generated["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["SagaView"]["properties"]["steps"].is_object());
}

#[test]
fn the_repository_definitions_load_with_their_catalogue() {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let loaded: Vec<String> = registry
        .definitions()
        .map(|d| format!("{} v{}", d.name, d.version))
        .collect();
    assert_eq!(
        loaded,
        ["approved_order v1", "express_order v1", "place_order v1"]
    );
    assert!(registry.catalogue().is_some());
}

fn delete(path: &str) -> Request<Body> {
    Request::delete(path).body(Body::empty()).unwrap()
}

/// The listed version `version` of saga `name`.
fn listed<'a>(list: &'a Value, name: &str, version: u32) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name && d["version"] == version)
        .unwrap_or_else(|| panic!("{name} v{version} not in {list}"))
}

#[tokio::test]
async fn definitions_lists_the_stored_versions_with_their_sagas_in_flight() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    o.record_definitions().await.unwrap();
    let (status, list) = call(&o, get("/v1/definitions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let place_order = listed(&list, "place_order", 1);
    let hash = place_order["hash"].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{place_order}"
    );
    assert_eq!(place_order["loaded"], true);
    assert_eq!(place_order["in_flight"], 0);
    assert!(place_order["stored_at"].is_string(), "{place_order}");
    assert_eq!(place_order["retired_at"], Value::Null);

    let (status, started) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = call(&o, get("/v1/definitions")).await;
    assert_eq!(listed(&list, "place_order", 1)["in_flight"], 1);
    assert_eq!(listed(&list, "express_order", 1)["in_flight"], 0);
    // The saga records the hash the list shows.
    let id = started["saga_id"].as_str().unwrap();
    let (_, events) = call(&o, get(&format!("/v1/sagas/{id}/events"))).await;
    assert_eq!(events[0]["data"]["definition_hash"], hash);
}

#[tokio::test]
async fn a_version_is_retired_once_no_saga_of_it_is_in_flight() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    o.record_definitions().await.unwrap();
    let (_, started) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        ),
    )
    .await;
    let id = started["saga_id"].as_str().unwrap().to_string();

    // In flight: refused, and the answer says how many.
    let (status, problem) = call(&o, delete("/v1/definitions/place_order/1")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("1 saga(s) in flight"), "{detail}");

    let (status, problem) = call(&o, delete("/v1/definitions/place_order/9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("version 9"));
    let (status, problem) = call(&o, delete("/v1/definitions/place_order/one")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // Once the saga has ended, the version retires; starting it is refused.
    complete(&o, id.parse().unwrap()).await;
    let (status, retired) = call(&o, delete("/v1/definitions/place_order/1")).await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_string(), "{retired}");
    let (status, problem) = call(
        &o,
        post(
            "/v1/sagas/place_order",
            r#"{"customer_id":"c-1","amount":500}"#,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("version 1 is retired"), "{detail}");
    // Its sagas' history stays readable, and the list shows it retired.
    let (status, saga) = call(&o, get(&format!("/v1/sagas/{id}"))).await;
    assert_eq!(
        (status, saga["status"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    let (status, _) = call(&o, get(&format!("/v1/sagas/{id}/events"))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = call(&o, get("/v1/definitions")).await;
    assert_eq!(
        listed(&list, "place_order", 1)["retired_at"],
        retired["retired_at"]
    );
    assert_eq!(listed(&list, "express_order", 1)["retired_at"], Value::Null);
}
