//! `saga simulate` and `saga validate --simulate` as a user runs them: the real binary on the
//! shipped definitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn sagas() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sagas")
}

fn saga(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saga"))
        .args(args)
        .current_dir(sagas().join(".."))
        .output()
        .expect("the saga binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn every_shipped_definition_is_simulated_clean_and_the_counts_are_the_same_every_run() {
    let output = saga(&["simulate", "sagas", "--seeds", "500", "--format", "json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ok"], true);
    let definitions = report["definitions"].as_array().unwrap();
    assert_eq!(definitions.len(), 4, "{report}");
    for d in definitions {
        assert_eq!(d["schedules"], 500, "{d}");
        assert!(d["failure"].is_null(), "{d}");
    }
    // Deterministic: the same seeds end the same way, to the event.
    insta::assert_yaml_snapshot!(report, {
        ".definitions[].seconds" => "[seconds]",
        ".definitions[].file" => "[file]",
    });
}

#[test]
fn a_seed_is_traced_event_by_event_and_its_schedule_replays_it() {
    let args = ["simulate", "sagas/place_order.toml", "--seed", "214"];
    let traced = saga(&[&args[..], &["--trace"]].concat());
    assert!(traced.status.success(), "{traced:?}");
    let text = stdout(&traced);
    // The faults of this schedule happened: a command delayed past its timeout, a lost one,
    // a crash, and the late command refused by the tombstone its compensation left.
    for fault in [
        "delayed by",
        "lost: CreateOrder",
        "orchestrator crashed",
        "tombstone left",
        "refused: tombstone",
    ] {
        assert!(text.contains(fault), "{fault}:\n{text}");
    }
    insta::assert_snapshot!(text);
    let header = text.lines().next().unwrap();
    let schedule = header
        .rsplit("schedule ")
        .next()
        .unwrap()
        .trim_end_matches(':');
    let replayed = saga(&[&args[..], &["--replay", schedule]].concat());
    assert!(replayed.status.success(), "{replayed:?}");
    assert_eq!(stdout(&replayed), text);
}

#[test]
fn validate_simulates_what_it_validated() {
    let output = saga(&["validate", "sagas", "--simulate", "--seeds", "100"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains("sagas/place_order.toml: ok (place_order v1)"),
        "{text}"
    );
    assert!(
        text.contains("faults: lose,duplicate,reorder,delay,crash,refuse,fail"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_end().ends_with(" ok"))
            .count(),
        4,
        "{text}"
    );
}

#[test]
fn bad_arguments_say_what_is_expected() {
    let output = saga(&["simulate", "sagas", "--faults", "lose,bogus"]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains("unknown fault `bogus`: expected all, none or some of lose, duplicate"),
        "{error}"
    );

    let output = saga(&["simulate", "sagas/place_order.toml", "--replay", "3=1"]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("is not `position:value`"), "{error}");

    let output = saga(&["simulate", "sagas", "--trace"]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("one definition; 4 given"), "{error}");

    let output = saga(&[
        "simulate",
        "sagas/place_order.toml",
        "--input",
        "{\"amount\": 1}",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains(
            "cannot make up an input for place_order (missing input field `customer_id` (string))"
        ),
        "{error}"
    );
}
