//! No saga runs on silently: one still running past its deadline plus the overdue margin is
//! flagged in its status, found by `GET /v1/sagas?overdue=true`, and counted as the
//! `saga_overdue` gauge counts it (the gauge itself is read in the telemetry scenario). Through the router over a real nats-server and the in-memory store;
//! no loop runs, so nothing moves the sagas on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use saga_orchestrator::runtime::{
    Options, Orchestrator, Registry, overdue_before, overdue_statuses,
};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::store::ReadModel;
use saga_orchestrator::transport::JetStream;
use saga_protocol::Timestamp;
use saga_testkit::{NatsServer, wait_for};
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

/// A one-step saga; `deadline` is its `[saga] deadline`, if any.
fn definition(name: &str, deadline: Option<&str>) -> String {
    let deadline = deadline
        .map(|d| format!("deadline = \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        "[saga]\nname = \"{name}\"\nversion = 1\n{deadline}\n[input]\ncustomer_id = \"string\"\n\n\
         [[step]]\nname = \"reserve\"\nparticipant = \"account\"\ncommand = \"ReserveCredit\"\n\
         compensation = \"ReleaseCredit\"\n"
    )
}

async fn orchestrator(nats: &NatsServer, overdue_after: Duration) -> Orchestrator<MemoryStore> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hurried.toml"),
        definition("hurried", Some("1ms")),
    )
    .unwrap();
    std::fs::write(dir.path().join("patient.toml"), definition("patient", None)).unwrap();
    let registry = Registry::load_dir(dir.path()).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    let options = Options {
        overdue_after,
        ..Options::default()
    };
    Orchestrator::new(MemoryStore::new(), transport, registry, options)
}

async fn get(o: &Orchestrator<MemoryStore>, path: &str) -> (StatusCode, Value) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = saga_orchestrator::api::router(o.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

fn listed(list: &Value) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = list["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["saga_id"].as_str().unwrap().to_string(),
                s["overdue"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_saga_running_past_its_deadline_and_the_margin_is_flagged_listed_and_counted() {
    let nats = NatsServer::start().unwrap();
    // With no margin, a saga is overdue as soon as its deadline (or, without one, its start)
    // has passed while it still runs.
    let o = orchestrator(&nats, Duration::ZERO).await;
    let input = json!({"customer_id": "c-1"});
    let hurried = o
        .start("hurried", input.clone(), None)
        .await
        .unwrap()
        .saga_id;
    let (_, status) = get(&o, &format!("/v1/sagas/{hurried}")).await;
    assert!(status["deadline_at"].is_string(), "{status}");
    let flagged = wait_for(
        "the saga past its 1 ms deadline to be overdue",
        Duration::from_secs(10),
        || async {
            let (_, status) = get(&o, &format!("/v1/sagas/{hurried}")).await;
            (status["overdue"] == true).then_some(status)
        },
    )
    .await
    .unwrap();
    assert_eq!(flagged["status"], "running");

    let (status, list) = get(&o, "/v1/sagas?overdue=true").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(listed(&list), [(hurried.to_string(), true)]);
    // Of the statuses asked for, only active ones can be overdue.
    let (_, none) = get(&o, "/v1/sagas?overdue=true&status=completed").await;
    assert_eq!(listed(&none), []);
    let (status, problem) = get(&o, "/v1/sagas?overdue=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("true or false"),
        "{problem}"
    );

    // The `saga_overdue` gauge samples this count when /metrics is read.
    let now_before = overdue_before(
        &Options {
            overdue_after: Duration::ZERO,
            ..Options::default()
        },
        Timestamp::now(),
    );
    let counted = o
        .store()
        .count_overdue(&overdue_statuses(), now_before)
        .await
        .unwrap();
    assert_eq!(counted, 1);
}

#[tokio::test]
async fn a_saga_within_its_margin_is_not_overdue() {
    let nats = NatsServer::start().unwrap();
    let o = orchestrator(&nats, Duration::from_secs(3600)).await;
    let input = json!({"customer_id": "c-1"});
    let hurried = o
        .start("hurried", input.clone(), None)
        .await
        .unwrap()
        .saga_id;
    let patient = o.start("patient", input, None).await.unwrap().saga_id;
    for id in [hurried, patient] {
        let (_, status) = get(&o, &format!("/v1/sagas/{id}")).await;
        assert_eq!(status["overdue"], false, "{status}");
    }
    let (_, list) = get(&o, "/v1/sagas").await;
    let mut all = vec![(hurried.to_string(), false), (patient.to_string(), false)];
    all.sort();
    assert_eq!(listed(&list), all);
    let (_, overdue) = get(&o, "/v1/sagas?overdue=true").await;
    assert_eq!(listed(&overdue), []);
}
