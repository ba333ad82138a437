//! The operator's command line against a running system: `saga list` (search and paging),
//! `saga definitions`, `saga status --as-of-sequence` and `saga status --watch`.

use crate::system::{Backend, REVIEW_LIMIT, System};
use serde_json::Value;
use std::time::Duration;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_searches_pages_and_watches() {
    let system = System::start(Backend::Sqlite).await;
    system.open_account("alice", 10_000_000).await;
    system.open_account("bob", 10_000_000).await;
    let alice_ok = system.start_saga("alice", 500).await;
    let bob_ok = system.start_saga("bob", 600).await;
    let alice_big = system.start_saga("alice", REVIEW_LIMIT + 1).await;
    let ids = [alice_ok, bob_ok, alice_big];
    system.wait_terminal(&ids, Duration::from_secs(60)).await;

    let found = json(&system.cli(&[
        "list",
        "--input",
        "customer_id=alice",
        "--status",
        "compensated",
        "--output",
        "json",
    ]));
    let found: Vec<&str> = found["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [alice_big.to_string()]);

    // Pages of two: the second, from the first's cursor, holds the oldest.
    let first = json(&system.cli(&["list", "--limit", "2", "--output", "json"]));
    assert_eq!(first["sagas"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json(&system.cli(&[
        "list", "--limit", "2", "--cursor", cursor, "--output", "json",
    ]));
    assert_eq!(second["sagas"][0]["saga_id"], alice_ok.to_string());
    let table = system.cli(&["list", "--status", "completed"]);
    assert!(table.starts_with(" saga"), "{table}");
    assert!(table.contains(&bob_ok.to_string()), "{table}");
    assert!(!table.contains(&alice_big.to_string()), "{table}");

    let definitions = json(&system.cli(&["definitions", "--output", "json"]));
    assert!(
        definitions
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "place_order" && d["version"] == 1),
        "{definitions}"
    );

    let then = json(&system.cli(&[
        "status",
        &alice_big.to_string(),
        "--as-of-sequence",
        "1",
        "--output",
        "json",
    ]));
    assert_eq!(
        (then["status"].as_str(), then["version"].as_u64()),
        (Some("running"), Some(1))
    );

    // --watch follows a saga from its start to its end, then exits 0.
    let started = system.cli(&[
        "start",
        "place_order",
        "--input",
        r#"{"customer_id":"bob","amount":700}"#,
    ]);
    let watched = system.cli(&["status", started.trim(), "--watch", "--output", "json"]);
    let last = watched.lines().last().unwrap();
    assert_eq!(json(last)["status"], "completed", "{watched}");
}
