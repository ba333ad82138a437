//! The HTTP API through the router (no socket), over a real nats-server and the in-memory
//! store, plus one test over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::transport::Transport;
use saga_testkit::NatsServer;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn orchestrator(nats: &NatsServer) -> Orchestrator<MemoryStore> {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let transport = Transport::connect(&nats.url(), 1).await.unwrap();
    Orchestrator::new(MemoryStore::new(), transport, registry, Options::default())
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
    assert_eq!(list[0]["saga_id"], id.as_str());
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
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("use a new Idempotency-Key"),
        "{problem}"
    );
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

#[tokio::test]
async fn readyz_names_each_check_and_needs_a_definition() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    let (status, report) = call(&o, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({"status": "ready", "checks": {"database": "ok", "nats": "ok", "definitions": "2 loaded"}})
    );

    // Without definitions every start would be refused: not ready, and the body says why.
    let transport = Transport::connect(&nats.url(), 1).await.unwrap();
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
    let server =
        tokio::spawn(axum::serve(listener, saga_orchestrator::api::router(o)).into_future());
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
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
}

#[test]
fn the_repository_definitions_load_with_their_catalogue() {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let loaded: Vec<String> = registry
        .definitions()
        .map(|d| format!("{} v{}", d.name, d.version))
        .collect();
    assert_eq!(loaded, ["express_order v1", "place_order v1"]);
    assert!(registry.catalogue().is_some());
}
