//! Starting, reading, searching and counting sagas; idempotency keys; refusals of bad requests.

use super::*;

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
