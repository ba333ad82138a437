//! The definition language end to end: versions side by side, a reload while sagas run, a
//! saga with a parallel group and a retriable step, and definitions stored with the sagas (a
//! saga finishes on its version after a restart without its file; a version edited in place
//! is refused).

use crate::system::{Backend, Service, System};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

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

/// `GET /v1/definitions`: every stored version.
async fn definitions(system: &System) -> Value {
    let url = format!("{}/v1/definitions", system.api);
    let resp = reqwest::get(&url).await.expect("GET /v1/definitions");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.expect("json")
}

/// The listed version `version` of place_order.
fn place_order(list: &Value, version: u32) -> &Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "place_order" && d["version"] == version)
        .unwrap_or_else(|| panic!("place_order v{version} is not listed: {list}"))
}

/// The `definition_hash` recorded in the saga's SagaStarted.
async fn started_hash(system: &System, id: Uuid) -> Value {
    let history = system.history(id).await;
    assert_eq!(history[0]["type"], "SagaStarted", "{history:?}");
    history[0]["data"]["definition_hash"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_of_version_1_finish_on_it_after_a_restart_with_only_version_2() {
    let v1 = std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml"))
        .unwrap();
    let mut system = System::start_with(Backend::Sqlite, Some(&v1)).await;
    system.open_account("r", 100_000).await;
    // Version 1 sagas wait at create_order while the order service is down.
    system.kill(Service::Order);
    let old = [
        system.start_saga("r", 100).await,
        system.start_saga("r", 200).await,
    ];
    for id in old {
        system.wait_event(id, "StepSucceeded", LONG).await;
    }
    let v1_hash = place_order(&definitions(&system).await, 1)["hash"].clone();
    assert!(v1_hash.is_string(), "{v1_hash}");

    // The orchestrator dies and comes back on a directory that holds version 2 only.
    system.kill(Service::Orchestrator);
    std::fs::remove_file(system.sagas_dir().join("place_order.toml")).unwrap();
    std::fs::write(system.sagas_dir().join("place_order.v2.toml"), V2).unwrap();
    system.spawn(Service::Orchestrator);
    system.wait_readyz(Service::Orchestrator, true, LONG).await;
    let list = definitions(&system).await;
    let stored_v1 = place_order(&list, 1);
    assert_eq!(
        (
            &stored_v1["hash"],
            &stored_v1["loaded"],
            &stored_v1["in_flight"]
        ),
        (&v1_hash, &json!(false), &json!(2)),
        "{list}"
    );
    assert_eq!(place_order(&list, 2)["loaded"], true, "{list}");
    // Its sagas are in flight: version 1 cannot be retired yet.
    let http = reqwest::Client::new();
    let retire = format!("{}/v1/definitions/place_order/1", system.api);
    let resp = http.delete(&retire).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("2 saga(s) in flight"),
        "{problem}"
    );

    let new = system.start_saga("r", 300).await;
    system.spawn(Service::Order);
    let all: Vec<Uuid> = old.iter().copied().chain([new]).collect();
    let status = system.wait_terminal(&all, LONG).await;
    for id in &all {
        assert_eq!(status[id], "completed", "saga {id}\n{}", system.logs());
    }
    for id in old {
        let saga = system.saga(id).await.unwrap();
        assert_eq!(saga["definition_version"], 1, "{saga}");
        assert_eq!(saga["definition_hash"], v1_hash, "{saga}");
        assert_eq!(started_hash(&system, id).await, v1_hash);
        // Version 1's steps, one after the other: the stored definition ran them.
        let started: Vec<_> = system
            .history(id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "StepStarted")
            .map(|e| e["data"]["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(started, ["reserve_credit", "create_order", "approve_order"]);
    }
    let saga = system.saga(new).await.unwrap();
    assert_eq!(saga["definition_version"], 2, "{saga}");
    let list = definitions(&system).await;
    assert_eq!(
        started_hash(&system, new).await,
        place_order(&list, 2)["hash"]
    );
    assert_ne!(place_order(&list, 2)["hash"], v1_hash);

    // With none in flight, version 1 retires; its sagas' history stays readable.
    let table = system.cli(&["definitions"]);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("place_order  1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(" no "),
        "version 1's file is not loaded: {table}"
    );
    let retired = system.cli(&["definitions", "retire", "place_order", "1"]);
    assert!(
        retired.starts_with("retired place_order v1 at "),
        "{retired}"
    );
    assert!(place_order(&definitions(&system).await, 1)["retired_at"].is_string());
    assert_eq!(system.saga(old[0]).await.unwrap()["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_version_1_in_place_is_refused_on_reload_and_at_start_up() {
    let v1 = std::fs::read_to_string(saga_testkit::workspace_root().join("sagas/place_order.toml"))
        .unwrap();
    let mut system = System::start_with(Backend::Sqlite, Some(&v1)).await;
    system.open_account("e", 1_000).await;
    let v1_hash = place_order(&definitions(&system).await, 1)["hash"].clone();

    // Same name and version, other content: longer timeouts.
    let edited = v1.replace("timeout = \"10s\"", "timeout = \"20s\"");
    assert_ne!(edited, v1);
    std::fs::write(system.sagas_dir().join("place_order.toml"), &edited).unwrap();
    // The `version = 1` line of the file, with what to do.
    let diagnostic = "place_order.toml:6:11: error: saga `place_order` version 1 differs from \
                      the stored version 1";
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/definitions/reload", system.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let problem: Value = resp.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(diagnostic), "{detail}");
    assert!(detail.contains("bump the version"), "{detail}");
    // SIGHUP says the same in the log.
    system.hangup(Service::Orchestrator);
    let logged = saga_testkit::wait_for("the refused SIGHUP reload", LONG, || async {
        let log = system.log(Service::Orchestrator);
        (log.contains("saga definitions not reloaded") && log.contains(diagnostic)).then_some(())
    })
    .await;
    assert!(logged.is_ok(), "{}", system.logs());

    // Nothing changed: a new saga runs the stored version 1.
    let id = system.start_saga("e", 10).await;
    assert_eq!(system.wait_terminal(&[id], LONG).await[&id], "completed");
    assert_eq!(started_hash(&system, id).await, v1_hash);
    let list = definitions(&system).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(place_order(&list, 1)["hash"], v1_hash);

    // At start-up the edited file stops the orchestrator, which says where and why.
    system.kill(Service::Orchestrator);
    let before = system.log(Service::Orchestrator).len();
    system.spawn(Service::Orchestrator);
    let exit = system.wait_exit(Service::Orchestrator, LONG).await;
    assert!(!exit.success(), "{exit}");
    let log = system.log(Service::Orchestrator);
    let start_up = &log[before..];
    assert!(start_up.contains(diagnostic), "{start_up}");
    assert!(start_up.contains("bump the version"), "{start_up}");
}
