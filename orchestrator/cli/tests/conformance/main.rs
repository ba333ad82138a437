//! `saga conformance` against real participants on a real nats-server with authentication
//! and TLS: the built-in account and order processes and a participant written against the
//! library here pass every check; a deliberately broken participant fails each check it
//! breaks, and passes them all when it breaks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broken;
mod points;

use saga_testkit::{NatsOptions, NatsServer, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn server() -> NatsServer {
    NatsServer::launch(NatsOptions {
        participants: ["account", "order", "inventory", "points", "broken"]
            .map(String::from)
            .to_vec(),
        ..NatsOptions::default()
    })
    .expect("nats-server starts")
}

/// `saga conformance` as identity `conformance`; its JSON report.
fn conformance(
    nats: &NatsServer,
    participant: &str,
    catalogue: &Path,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args([
            "conformance",
            "--participant",
            participant,
            "--nats",
            &nats.url(),
        ])
        .args(nats.auth_args("conformance"))
        .arg("--catalogue")
        .arg(catalogue)
        .args(["--output", "json", "--timeout", "5s"])
        .args(extra)
        .current_dir(root())
        .output()
        .expect("saga conformance runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// The checks of a report that failed, by name.
fn failed(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

/// A `saga participant` process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn participant(nats: &NatsServer, kind: &str, dir: &Path) -> Process {
    let log = dir.join(format!("{kind}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args(["participant", kind, "--nats", &nats.url()])
        .args(nats.auth_args(kind))
        .arg("--database")
        .arg(format!(
            "sqlite:{}?mode=rwc",
            dir.join(format!("{kind}.db")).display()
        ))
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("saga participant starts");
    let process = Process(child);
    wait_for(&format!("{kind} ready"), DEADLINE, || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("participant ready"))
    })
    .await
    .unwrap();
    process
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_participants_pass_every_check() {
    let nats = server();
    let dir = tempfile::tempdir().unwrap();
    let _account = participant(&nats, "account", dir.path()).await;
    let _order = participant(&nats, "order", dir.path()).await;
    let _inventory = participant(&nats, "inventory", dir.path()).await;
    let opened = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args([
            "account",
            "open",
            "conformance-1",
            "--deposit",
            "1000",
            "--nats",
            &nats.url(),
        ])
        .args(nats.auth_args("admin"))
        .output()
        .unwrap();
    assert!(opened.status.success(), "{opened:?}");
    let catalogue = root().join("sagas/participants.toml");
    let payload = r#"ReserveCredit={"customer_id":"conformance-1","amount":5}"#;
    let (output, report) = conformance(&nats, "account", &catalogue, &["--payload", payload]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "duplicate",
            "envelope",
            "compensation-first",
            "compensation-twice",
            "malformed",
            "unknown-command"
        ]
    );
    // The retry was checked against an applied reservation, not a refusal.
    let duplicate = &report["checks"][0]["detail"];
    assert!(
        duplicate.as_str().unwrap().contains("found the effect"),
        "{duplicate}"
    );

    let (output, report) = conformance(&nats, "order", &catalogue, &[]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    // Three forward commands, one of them with its compensation: 3 × 2 + 2 + 2.
    assert_eq!(report["checks"].as_array().unwrap().len(), 10, "{report:#}");

    let added = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args([
            "inventory",
            "add-show",
            "conformance-show",
            "--capacity",
            "100",
            "--nats",
            &nats.url(),
        ])
        .args(nats.auth_args("admin"))
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let payload = r#"ReserveSeats={"show_id":"conformance-show","seats":2}"#;
    let (output, report) = conformance(&nats, "inventory", &catalogue, &["--payload", payload]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    let reserve = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["command"] == "ReserveSeats" && c["check"] == "duplicate")
        .unwrap();
    assert!(
        reserve["detail"]
            .as_str()
            .unwrap()
            .contains("found the effect"),
        "{reserve}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_written_against_the_library_passes_every_check() {
    let nats = server();
    let dir = tempfile::tempdir().unwrap();
    let catalogue = dir.path().join("participants.toml");
    std::fs::write(&catalogue, points::CATALOGUE).unwrap();
    let running = points::start(&nats, dir.path()).await;
    let (output, report) = conformance(&nats, "points", &catalogue, &[]);
    running.stop().await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 6, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_participant_fails_each_check_it_breaks() {
    let nats = server();
    let dir = tempfile::tempdir().unwrap();
    let catalogue = dir.path().join("participants.toml");
    std::fs::write(&catalogue, broken::CATALOGUE).unwrap();
    let participant = broken::Broken::start(&nats).await;
    // Breaking nothing, it passes: what fails below is the break, not the test participant.
    let cases = [
        (broken::Break::Nothing, vec![]),
        (
            broken::Break::NoInbox,
            vec!["duplicate", "compensation-twice"],
        ),
        (broken::Break::NoTombstone, vec!["compensation-first"]),
        (broken::Break::UndoesTwice, vec!["compensation-twice"]),
        (broken::Break::WrongIds, vec!["envelope"]),
        (broken::Break::NoTrace, vec!["envelope"]),
        (
            broken::Break::SwallowsBadInput,
            vec!["malformed", "unknown-command"],
        ),
    ];
    for (break_, expected) in cases {
        participant.set(break_);
        let (output, report) = conformance(&nats, "broken", &catalogue, &[]);
        let expected: Vec<String> = expected.into_iter().map(String::from).collect();
        assert_eq!(failed(&report), expected, "{break_:?}: {report:#}");
        assert_eq!(output.status.success(), expected.is_empty(), "{break_:?}");
    }
    // The text report names the failure and what was seen.
    participant.set(broken::Break::NoTombstone);
    let text = Command::new(env!("CARGO_BIN_EXE_saga"))
        .args([
            "conformance",
            "--participant",
            "broken",
            "--nats",
            &nats.url(),
        ])
        .args(nats.auth_args("conformance"))
        .arg("--catalogue")
        .arg(&catalogue)
        .args(["--timeout", "5s"])
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(stdout.contains("compensation-first  Undo"), "{stdout}");
    assert!(
        stdout.contains("FAIL    the Do that came after its compensation was answered succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("broken: 5 of 6 checks passed"), "{stdout}");
}
