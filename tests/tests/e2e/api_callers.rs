//! The API knows its callers: tokens made by `saga api token`, each a name with a role, given
//! to the real orchestrator by `--api-tokens`; a role is let through where it may go and
//! refused with a problem naming the role needed; an operator action records the caller, not
//! what the client claims; a token rotated in the file and reloaded on SIGHUP replaces the
//! old one; `/metrics` moves to its own listener.

use crate::system::{Backend, Options, Service, System};
use saga_testkit::{free_port, saga_bin, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// `saga api token` for `name` with `role` into `file`; returns the token it printed.
fn make_token(file: &Path, name: &str, role: &str, replace: bool) -> String {
    let mut cmd = Command::new(saga_bin().unwrap());
    cmd.args(["api", "token", "--name", name, "--role", role, "--tokens"])
        .arg(file);
    if replace {
        cmd.arg("--replace");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("saga_") && token.len() == 69, "{token}");
    token
}

/// The `saga` CLI against the system's API with `token`.
fn saga_with(system: &System, token: &str, args: &[&str]) -> Output {
    Command::new(saga_bin().unwrap())
        .args(args)
        .env("SAGA_SERVER", &system.api)
        .env("SAGA_API_TOKEN", token)
        .output()
        .unwrap()
}

async fn get(url: &str, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_have_roles_their_names_are_recorded_and_tokens_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-tokens.toml");
    let operator = make_token(&file, "oscar", "operate", false);
    let reader = make_token(&file, "rita", "read", false);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        !stored.contains(&operator) && !stored.contains(&reader),
        "the file keeps digests, never tokens:\n{stored}"
    );
    let metrics_port = free_port().unwrap();
    let mut system = System::start_with_options(
        Backend::Sqlite,
        Options {
            env: vec![
                ("SAGA_API_TOKENS".into(), file.display().to_string()),
                (
                    "SAGA_METRICS_LISTEN".into(),
                    format!("127.0.0.1:{metrics_port}"),
                ),
            ],
            ..Options::default()
        },
    )
    .await;
    // With the account participant away, the saga waits on its first step for the operator.
    system.kill(Service::Account);

    let input = json!({"customer_id": "c-1", "amount": 500}).to_string();
    let refused = saga_with(
        &system,
        &reader,
        &["start", "place_order", "--input", &input],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("`rita` has the read role") && said.contains("needs the operate role"),
        "{said}"
    );
    let nobody = saga_with(&system, "saga_not-a-token", &["list"]);
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("not one of this orchestrator's"));

    let started = saga_with(
        &system,
        &operator,
        &[
            "start",
            "place_order",
            "--input",
            &input,
            "--output",
            "json",
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let started: Value = serde_json::from_slice(&started.stdout).unwrap();
    let id = started["saga_id"].as_str().unwrap().to_string();

    // The client claims to be someone else; the orchestrator records who the token is.
    let cancelled = saga_with(
        &system,
        &operator,
        &[
            "cancel",
            &id,
            "--reason",
            "customer called",
            "--by",
            "mallory",
        ],
    );
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    let history = saga_with(&system, &reader, &["history", &id, "--output", "json"]);
    assert!(
        history.status.success(),
        "{}",
        String::from_utf8_lossy(&history.stderr)
    );
    let events: Value = serde_json::from_slice(&history.stdout).unwrap();
    let event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "SagaCancelled")
        .unwrap_or_else(|| panic!("no SagaCancelled: {events}"));
    assert_eq!(
        event["data"]["by"],
        serde_json::json!({"name": "oscar", "role": "operate"}),
        "{event}"
    );
    assert!(
        system.log(Service::Orchestrator).contains("caller=oscar"),
        "the API call is logged with its caller:\n{}",
        system.log(Service::Orchestrator)
    );

    // Metrics: on their own listener, open; no longer on the API.
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert_eq!(get(&metrics, None).await, 200);
    let body = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert!(body.contains("saga_"), "{body}");
    assert_eq!(
        get(&format!("{}/metrics", system.api), Some(&reader)).await,
        404
    );

    // Rotation: a new token for rita in the file; after SIGHUP the old one is refused.
    let rotated = make_token(&file, "rita", "read", true);
    let list = format!("{}/v1/sagas", system.api);
    assert_eq!(get(&list, Some(&reader)).await, 200);
    system.hangup(Service::Orchestrator);
    wait_for("the rotated token to be taken", LONG, || async {
        (get(&list, Some(&rotated)).await == 200).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    assert_eq!(
        get(&list, Some(&reader)).await,
        401,
        "the old token is revoked"
    );
    assert_eq!(get(&list, Some(&operator)).await, 200, "oscar is untouched");

    // No token is in a log, in /readyz, or in a refusal's body.
    let (_, ready) = system
        .probe(Service::Orchestrator, "/readyz")
        .await
        .unwrap();
    let refusal = reqwest::Client::new()
        .get(&list)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for token in [&operator, &reader, &rotated] {
        for service in [Service::Orchestrator, Service::Account, Service::Order] {
            let log = system.log(service);
            assert!(
                !log.contains(token.as_str()),
                "a token in the {} log",
                service.name()
            );
        }
        assert!(!ready.to_string().contains(token.as_str()), "{ready}");
        assert!(!refusal.contains(token.as_str()), "{refusal}");
    }
}
