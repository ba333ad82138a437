//! The definition language end to end: versions side by side, a reload while sagas run, and
//! a saga with a parallel group and a retriable step.

use crate::system::{Backend, Service, System};
use std::collections::HashMap;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// place_order version 2: credit and order in parallel.
const V2: &str = r#"
[saga]
name = "place_order"
version = 2

[input]
customer_id = "string"
amount = "integer"

[[step]]
name = "reserve_credit"
group = "prepare"
participant = "account"
command = "ReserveCredit"
compensation = "ReleaseCredit"
[step.input]
customer_id = "{{ input.customer_id }}"
amount = "{{ input.amount }}"

[[step]]
name = "create_order"
group = "prepare"
participant = "order"
command = "CreateOrder"
compensation = "CancelOrder"
[step.input]
customer_id = "{{ input.customer_id }}"
amount = "{{ input.amount }}"

[[step]]
name = "approve_order"
participant = "order"
command = "ApproveOrder"
kind = "pivot"
[step.input]
order_id = "{{ steps.create_order.output.order_id }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_started_on_version_1_finish_on_it_after_version_2_is_loaded() {
    let v1 = std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml"))
        .unwrap();
    let mut system = System::start_with(Backend::Sqlite, Some(&v1)).await;
    system.open_account("v", 100_000).await;
    // Version 1 sagas wait at create_order while the order service is down.
    system.kill(Service::Order);
    let old: Vec<_> = [
        system.start_saga("v", 100).await,
        system.start_saga("v", 200).await,
    ]
    .into();
    for id in &old {
        system.wait_event(*id, "StepSucceeded", LONG).await;
    }
    // Version 2 arrives mid-flight; a broken file would be refused, this one loads.
    std::fs::write(system.sagas_dir().join("place_order.v2.toml"), V2).unwrap();
    assert_eq!(system.reload().await, 200);
    let new = system.start_saga("v", 300).await;
    system.spawn(Service::Order);
    let all: Vec<_> = old.iter().copied().chain([new]).collect();
    let status = system.wait_terminal(&all, LONG).await;
    for id in &all {
        assert_eq!(status[id], "completed", "saga {id}");
    }
    for id in &old {
        let saga = system.saga(*id).await.unwrap();
        assert_eq!(saga["definition_version"], 1, "{saga}");
        // Version 1 runs its steps one after the other.
        let started: Vec<_> = system
            .history(*id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "StepStarted")
            .map(|e| e["data"]["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(started, ["reserve_credit", "create_order", "approve_order"]);
    }
    let saga = system.saga(new).await.unwrap();
    assert_eq!(saga["definition_version"], 2, "{saga}");
    // Version 2 starts both members of its group at once, before either answers.
    let types = system.event_types(new).await;
    assert_eq!(&types[1..3], ["StepStarted", "StepStarted"], "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_definition_is_refused_on_reload_and_nothing_changes() {
    let v1 = std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml"))
        .unwrap();
    let system = System::start_with(Backend::Sqlite, Some(&v1)).await;
    std::fs::write(
        system.sagas_dir().join("broken.toml"),
        V2.replace("ReserveCredit", "ReserveCredt"),
    )
    .unwrap();
    assert_eq!(system.reload().await, 400);
    system.open_account("w", 1_000).await;
    let id = system.start_saga("w", 10).await;
    assert_eq!(system.wait_terminal(&[id], LONG).await[&id], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_saga_completes_and_compensates() {
    let system = System::start(Backend::Postgres).await;
    system.open_account("x", 10_000_000).await;
    let done = system.start_named("express_order", "x", 500).await;
    let undone = system.start_named("express_order", "x", 2_000_000).await;
    let status = system.wait_terminal(&[done, undone], LONG).await;
    assert_eq!(
        (status[&done].as_str(), status[&undone].as_str()),
        ("completed", "compensated")
    );
    // The group's compensations ran together: both were started before either finished.
    let types = system.event_types(undone).await;
    let first_comp = types
        .iter()
        .position(|t| t == "CompensationStarted")
        .unwrap();
    assert_eq!(types[first_comp + 1], "CompensationStarted", "{types:?}");
    assert!(
        system
            .event_types(done)
            .await
            .iter()
            .filter(|t| *t == "StepSucceeded")
            .count()
            == 4
    );
    let orders = system
        .assert_conserved(&HashMap::from([("x".to_string(), 10_000_000)]))
        .await;
    assert_eq!(
        (orders.get("approved"), orders.get("cancelled")),
        (Some(&1), Some(&1))
    );
}
