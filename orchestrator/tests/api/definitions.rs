//! The stored definitions: listed with their sagas in flight, retired.

use super::*;

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
        [
            "approved_order v1",
            "book_seats v1",
            "express_order v1",
            "place_order v1"
        ]
    );
    assert!(registry.catalogue().is_some());
}

#[tokio::test]
async fn definitions_lists_the_stored_versions_with_their_sagas_in_flight() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats).await;
    o.record_definitions().await.unwrap();
    let (status, list) = call(&o, get("/v1/definitions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 4, "{list}");
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
