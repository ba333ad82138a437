//! Acting on sagas: cancel, abort, signals.

use super::*;

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
