//! Who may call: the token, and each role route by route.

use super::*;

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
