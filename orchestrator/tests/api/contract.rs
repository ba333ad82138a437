//! The published contract: the OpenAPI document, problem details, probes, a real socket.

use super::*;

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
            "database": "ok", "nats": "ok", "definitions": "4 loaded", "reply_consumer_pulling": "ok"
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
