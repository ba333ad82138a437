//! `deploy/local/cluster.sh`, the scaled-out system on loopback for people to try: it starts
//! every process, the system runs a saga through any replica, and Ctrl-C (SIGINT) stops
//! every process it started.

use saga_participants::admin;
use saga_testkit::{wait_for, workspace_root};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_script_runs_the_system_and_stops_it() {
    let _serial = crate::SERIAL.lock().await;
    let dir = tempfile::Builder::new()
        .prefix("saga-cluster-script-")
        .tempdir()
        .expect("temp dir");
    let mut script = tokio::process::Command::new("bash")
        .arg(workspace_root().join("deploy/local/cluster.sh"))
        .env("CLUSTER_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run cluster.sh");
    let mut lines = BufReader::new(script.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(300), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.starts_with("cluster ready");
            printed.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "cluster.sh did not get ready: {printed:#?}\n{}",
        saga_testkit::log_tails(dir.path(), 20)
    );

    // Given the addresses it wrote down.
    let env = std::fs::read_to_string(dir.path().join("cluster.env")).expect("cluster.env");
    let value = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in cluster.env: {env}"))
            .to_string()
    };
    let nats = value("SAGA_NATS_URL");
    let apis: Vec<String> = value("SAGA_API_URLS")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(apis.len(), 3, "three orchestrators: {apis:?}");
    assert_eq!(nats.split(',').count(), 3, "three NATS nodes: {nats}");

    // When a customer has an account and a saga starts on the last replica.
    // As the admin identity the script made, over TLS to its nodes.
    let admin_nkey = value("SAGA_NATS_NKEY");
    let credentials = saga_protocol::auth::Credentials::read(admin_nkey.as_ref())
        .expect("admin seed")
        .with_ca(Some(value("SAGA_NATS_CA").into()));
    let role = saga_protocol::auth::Role::Admin;
    let client = saga_protocol::servers::connect_once(&nats, "test", &role, &credentials)
        .await
        .expect("nats client");
    wait_for("an account to open", Duration::from_secs(60), || {
        let client = client.clone();
        async move { admin::open_account(&client, "c-1", 1_000).await.ok() }
    })
    .await
    .expect("account opened");
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{}/v1/sagas/place_order", apis[2]))
        .json(&json!({"customer_id": "c-1", "amount": 100}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("start answer");
    let id = started["saga_id"].as_str().expect("saga id").to_string();

    // Then any replica shows it completed.
    let url = format!("{}/v1/sagas/{id}", apis[0]);
    wait_for("the saga to complete", Duration::from_secs(60), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let saga: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (saga["status"] == "completed").then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", saga_testkit::log_tails(dir.path(), 20)));

    // And SIGINT stops every process the script started. A shell cannot trap a signal that
    // was ignored when it started, and a test run started in the background without job
    // control (`cmd &` in a script) ignores SIGINT all the way down, so there a Ctrl-C could
    // never reach the script: it is sent the SIGTERM it handles the same way instead.
    let signal = if sigint_ignored() { "-TERM" } else { "-INT" };
    let pid = script.id().expect("script pid").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let stopped = tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push(line);
        }
        script.wait().await
    })
    .await;
    // Its processes: those naming its directory (NATS, PostgreSQL) or its NATS nodes (the
    // saga processes). A failed run must not leave them behind either.
    let needles = [dir.path().to_string_lossy().into_owned(), nats.clone()];
    let Ok(stopped) = stopped else {
        let left = still_running(&needles);
        kill_all(&left);
        panic!("cluster.sh did not stop within 90 s; killed {left:#?}\n{printed:#?}");
    };
    let stopped = stopped.expect("cluster.sh exit status");
    assert!(
        !stopped.success(),
        "interrupted, it exits non-zero: {stopped:?}"
    );
    assert_eq!(
        printed.last().map(String::as_str),
        Some("cluster stopped"),
        "{printed:#?}"
    );
    let left = still_running(&needles);
    kill_all(&left);
    assert!(left.is_empty(), "processes left running: {left:#?}");
}

/// The pid and command line of every process whose command line holds one of `needles`.
fn still_running(needles: &[String]) -> Vec<(String, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&raw).replace('\0', " ")))
        })
        .filter(|(pid, _)| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|(_, cmdline)| needles.iter().any(|n| cmdline.contains(n.as_str())))
        .collect()
}

/// SIGKILLs `processes`, so that a failing run leaves nothing behind.
fn kill_all(processes: &[(String, String)]) {
    for (pid, _) in processes {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
}

/// Whether this process ignores SIGINT (and so every process it starts does too), from the
/// `SigIgn` mask of `/proc/self/status`, whose bit n is signal n + 1.
fn sigint_ignored() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (SIGINT - 1)) != 0)
}

/// SIGINT's number on Linux.
const SIGINT: u32 = 2;
