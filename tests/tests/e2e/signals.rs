//! Await steps end to end, the `saga` binary as separate processes on SQLite: the saga waits
//! for its `approval` signal, goes on with the signal's payload when `saga signal` sends it,
//! records and ignores a second one, and compensates when none comes before the timeout; a
//! cancel is taken while it waits and refused once its pivot is sent.

use crate::system::{Backend, Service, System};
use serde_json::{Value, json};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// `sagas/approved_order.toml` with a wait of `timeout` instead of an hour.
fn approved_order(timeout: &str) -> String {
    let src =
        std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/approved_order.toml"))
            .unwrap();
    let edited = src.replace("timeout = \"1h\"", &format!("timeout = \"{timeout}\""));
    assert_ne!(edited, src, "the wait's timeout is in the file");
    edited
}

async fn signal(system: &System, id: uuid::Uuid, payload: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/sagas/{id}/signals/approval", system.api))
        .json(&payload)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_await_step_goes_on_with_its_signal_ignores_a_second_and_compensates_without_one() {
    let system = System::start_with(Backend::Sqlite, Some(&approved_order("4s"))).await;
    system.open_account("ana", 10_000).await;

    // Approved: the signal's payload is the step's output, and the order is approved.
    let approved = system.start_named("approved_order", "ana", 300).await;
    system.wait_event(approved, "SignalAwaited", LONG).await;
    let (code, problem) = signal(&system, approved, json!({"approved_by": ""})).await;
    assert_eq!(code, 400, "an approver is required: {problem}");
    let out = system.cli(&[
        "signal",
        &approved.to_string(),
        "approval",
        "--payload",
        r#"{"approved_by": "maria"}"#,
    ]);
    assert!(out.contains("signal approval taken"), "{out}");
    let status = system.wait_terminal(&[approved], LONG).await;
    assert_eq!(status[&approved], "completed");
    let saga = system.saga(approved).await.unwrap();
    let approval = saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "manager_approval")
        .cloned()
        .unwrap();
    assert_eq!(
        approval["output"],
        json!({"approved_by": "maria", "note": ""})
    );

    // A second signal is recorded and ignored.
    let (code, answer) = signal(&system, approved, json!({"approved_by": "joe"})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["accepted"], false, "{answer}");
    assert_eq!(
        answer["ignored"],
        "step `manager_approval` received it already"
    );
    let types = system.event_types(approved).await;
    assert_eq!(
        types.iter().filter(|t| *t == "SignalReceived").count(),
        1,
        "{types:?}"
    );
    assert!(types.contains(&"SignalIgnored".to_string()), "{types:?}");

    // No signal in time: the order is cancelled, then the credit released.
    let unanswered = system.start_named("approved_order", "ana", 200).await;
    system.wait_event(unanswered, "SignalAwaited", LONG).await;
    let status = system.wait_terminal(&[unanswered], LONG).await;
    assert_eq!(status[&unanswered], "compensated");
    let saga = system.saga(unanswered).await.unwrap();
    assert_eq!(
        saga["reason"],
        "manager_approval: no signal `approval` within 4s"
    );
    let undone: Vec<String> = system
        .history(unanswered)
        .await
        .into_iter()
        .filter(|e| e["type"] == "CompensationStarted")
        .map(|e| e["data"]["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(undone, ["create_order", "reserve_credit"]);
    let balance = saga_participants::admin::balance(&system.client, "ana")
        .await
        .unwrap();
    assert_eq!(
        balance.reserved, 300,
        "only the approved order's credit stays reserved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_taken_while_the_saga_waits_and_refused_once_its_pivot_is_sent() {
    let mut system = System::start(Backend::Sqlite).await;
    system.open_account("ivo", 10_000).await;

    // Waiting for its approval, before the pivot: a cancel undoes it.
    let waiting = system.start_named("approved_order", "ivo", 100).await;
    system.wait_event(waiting, "SignalAwaited", LONG).await;
    let (code, saga) = system
        .operate(waiting, "cancel", "the customer withdrew")
        .await;
    assert_eq!(code, 200, "{saga}");
    let status = system.wait_terminal(&[waiting], LONG).await;
    assert_eq!(status[&waiting], "compensated");

    // Approved while the order service is down: ApproveOrder, the pivot, is sent and not yet
    // answered, so nothing can undo the saga any more.
    let approved = system.start_named("approved_order", "ivo", 200).await;
    system.wait_event(approved, "SignalAwaited", LONG).await;
    system.kill(Service::Order);
    let (code, answer) = signal(&system, approved, json!({"approved_by": "maria"})).await;
    assert_eq!(
        (code, answer["accepted"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    let (code, problem) = system.operate(approved, "cancel", "too late").await;
    assert_eq!(code, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("pivot step `approve_order`"),
        "{problem}"
    );
    // Back, the order service approves it and the saga completes.
    system.spawn(Service::Order);
    let status = system.wait_terminal(&[approved], LONG).await;
    assert_eq!(status[&approved], "completed");
}
