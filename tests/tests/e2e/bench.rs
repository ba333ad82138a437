//! `saga bench` end to end with a tiny load: it starts its own system, runs the sagas and the
//! transport floor, and prints a JSON line whose correctness check passed. Timings are not
//! asserted: they depend on the machine.

use saga_testkit::{saga_bin, workspace_root};
use serde_json::Value;
use std::process::Command;

/// Runs `saga bench` with `args` and returns its JSON line.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(saga_bin().expect("saga binary"))
        .arg("bench")
        .args([
            "--sagas",
            "20",
            "--in-flight",
            "5",
            "--warmup",
            "5",
            "--output",
            "json",
        ])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("run saga bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "saga bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).expect("the last line is JSON")
}

fn assert_figures(report: &Value) {
    for field in ["throughput_per_s", "elapsed_s", "cpu_ms_per_saga"] {
        assert!(report[field].as_f64().is_some(), "{field} in {report}");
    }
    for q in ["p50", "p95", "p99", "max"] {
        assert!(report["latency_ms"][q].as_f64().is_some(), "latency {q}");
    }
    let sagas = &report["sagas"];
    assert_eq!(sagas["started"], 20);
    assert_eq!(sagas["errors"], 0);
    assert_eq!(
        sagas["completed"].as_u64().unwrap() + sagas["compensated"].as_u64().unwrap(),
        20
    );
    assert_eq!(sagas["compensated"], sagas["expected_compensated"]);
    let correctness = &report["correctness"];
    assert_eq!(correctness["passed"], true, "{correctness}");
    assert_eq!(correctness["checked_sagas"], 25);
}

#[test]
fn bench_on_sqlite_with_processes_reports_figures_floor_and_correctness() {
    let report = bench(&["--floor-sagas", "20"]);
    assert_figures(&report);
    let names: Vec<&str> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nats-server", "account", "order", "orchestrator"]);
    for p in report["processes"].as_array().unwrap() {
        assert!(p["cpu_s"].as_f64().is_some() && p["peak_rss_mb"].as_f64().unwrap() > 0.0);
    }
    assert!(report["floor"]["throughput_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(report["floor"]["sagas"], 20);
    assert!(report["floor_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_on_postgres_in_process_with_a_preloaded_store_reports_figures_and_correctness() {
    let report = bench(&[
        "--db",
        "postgres",
        "--mode",
        "in-process",
        "--no-floor",
        "--preload",
        "50",
    ]);
    assert_figures(&report);
    assert!(report["floor"].is_null());
    let names: Vec<&str> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"postgres"), "{names:?}");
}
