//! `saga dev`, the newcomer's first command: it runs the whole system with its demo, and a part
//! that cannot start stops it with the reason instead of leaving a system that only looks up.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `saga dev` with `args` in a fresh data directory, the repository's sagas, a free NATS
/// port, and a deadline: past it the process is killed and the test fails.
fn saga_dev(args: &[&str], deadline: Duration) -> Output {
    let data = tempfile::tempdir().unwrap();
    let nats_port = saga_testkit::free_port().unwrap().to_string();
    let mut child = Command::new(saga_testkit::saga_bin().unwrap())
        .arg("dev")
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--nats-port", &nats_port])
        .arg("--sagas")
        .arg(saga_testkit::workspace_root().join("sagas"))
        .args(args)
        .env("NATS_SERVER_BIN", saga_testkit::nats_server_bin().unwrap())
        .env_remove("SAGA_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "saga dev {args:?} still running after {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn dev_runs_the_demo_and_every_saga_ends() {
    let port = saga_testkit::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let out = saga_dev(
        &["--listen", &listen, "--demo", "6", "--exit-after-demo"],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ran 6 demo sagas"), "{stdout}");
    // The second books 2 of the show's 5 seats, charged to bob: confirmed, so sold.
    assert!(stdout.contains("book_seats"), "{stdout}");
    let show = ["opening-night", "5", "3", "0", "2"];
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(show.iter().copied())),
        "the show with 3 free and 2 sold:\n{stdout}"
    );
    // The sixth (i = 4) is above the review limit: approval refused, compensated.
    assert!(stdout.contains("5 completed"), "{stdout}");
    assert!(stdout.contains("1 compensated"), "{stdout}");
}

/// `saga dev` with `args` exits non-zero, says `reason` on stderr, and never claims to serve.
fn assert_stops_with(args: &[&str], reason: &str) {
    let out = saga_dev(args, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains(reason), "`{reason}` in stderr:\n{stderr}");
    assert!(
        !stdout.contains("Serving until Ctrl-C"),
        "nothing claims to serve:\n{stdout}"
    );
}

#[test]
fn dev_without_a_token_on_a_public_address_stops_with_the_reason() {
    let port = saga_testkit::free_port().unwrap();
    let listen = format!("0.0.0.0:{port}");
    // The message names the setting to give and the address that needs it.
    assert_stops_with(
        &["--listen", &listen, "--demo", "0"],
        &format!(
            "--listen {listen} is reachable from other machines, so the API needs a token: set --token or SAGA_API_TOKEN"
        ),
    );
}

#[test]
fn dev_stops_when_the_api_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    assert_stops_with(
        &["--listen", &listen, "--demo", "0"],
        &format!("cannot listen on {listen}"),
    );
}
