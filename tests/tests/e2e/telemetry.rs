//! Observability end to end: the orchestrator and both participants as separate processes
//! export over OTLP/HTTP to a real receiver ([`OtlpReceiver`], which decodes the protobuf
//! export), and serve `/metrics`.

use crate::system::{Backend, Options, REVIEW_LIMIT, Service, System};
use saga_testkit::otlp::{Span, tree};
use saga_testkit::{OtlpReceiver, wait_for};
use std::time::Duration;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);
/// Spans of one command attempt: the orchestrator's step, publish and reply-process spans;
/// the participant's process, handle, BEGIN, SELECT inbox, apply, INSERT inbox, COMMIT and
/// reply-publish spans.
const SPANS_PER_ATTEMPT: usize = 11;

/// Every process exports to `receiver` quickly, logs JSON, and never re-publishes on its own
/// during the test (so each command is sent exactly once).
fn observed(receiver: &OtlpReceiver, extra: &[(&str, &str)]) -> Options {
    let mut env: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("SAGA_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,saga_participants=debug"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Options {
        env,
        republish_after: "10m",
        ..Options::default()
    }
}

/// The trace id of saga `id`: the trace of any span that names it.
fn trace_of(receiver: &OtlpReceiver, id: Uuid) -> Option<String> {
    let id = id.to_string();
    receiver
        .spans()
        .into_iter()
        .find(|s| s.attribute("saga.id") == Some(id.as_str()))
        .map(|s| s.trace_id)
}

/// Waits until saga `id`'s trace is whole: `attempts` command attempts, each with all its
/// spans, plus the root; every parent present.
async fn whole_trace(
    receiver: &OtlpReceiver,
    system: &System,
    id: Uuid,
    attempts: usize,
) -> Vec<Span> {
    let expected = 1 + attempts * SPANS_PER_ATTEMPT;
    let found = wait_for("the saga's whole trace", LONG, || async {
        let trace = receiver.trace(&trace_of(receiver, id)?);
        let ids: Vec<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
        let parents_present = trace
            .iter()
            .filter_map(|s| s.parent_span_id.as_deref())
            .all(|p| ids.contains(&p));
        (trace.len() >= expected && parents_present).then_some(trace)
    })
    .await;
    found.unwrap_or_else(|e| {
        let trace = trace_of(receiver, id)
            .map(|t| receiver.trace(&t))
            .unwrap_or_default();
        panic!(
            "{e}: saga {id}\n{}\n{}\n{}",
            tree(&trace),
            missing_parents(receiver, &trace),
            system.log_tails(60)
        )
    })
}

/// For a failure message: each parent `trace` names but does not hold, and whether the
/// receiver has a span with that id in any trace at all (so a span exported into the wrong
/// trace is told apart from one never exported).
fn missing_parents(receiver: &OtlpReceiver, trace: &[Span]) -> String {
    let all = receiver.spans();
    let mut out = format!("{} spans received in all\n", all.len());
    for parent in trace.iter().filter_map(|s| s.parent_span_id.as_deref()) {
        if trace.iter().any(|s| s.span_id == parent) {
            continue;
        }
        match all.iter().find(|s| s.span_id == parent) {
            Some(s) => out.push_str(&format!(
                "parent {parent}: received in trace {} as {} [{}]\n",
                s.trace_id, s.name, s.service
            )),
            None => out.push_str(&format!("parent {parent}: never received\n")),
        }
    }
    out
}

/// Every span that names saga `id` is in one trace, and that trace holds no other saga.
fn assert_one_trace(receiver: &OtlpReceiver, id: Uuid, trace_id: &str) {
    let id = id.to_string();
    for span in receiver.spans() {
        let names_it = span.attribute("saga.id") == Some(id.as_str());
        if names_it {
            assert_eq!(span.trace_id, trace_id, "{} names saga {id}", span.name);
        }
        if span.trace_id == trace_id
            && let Some(other) = span.attribute("saga.id")
        {
            assert_eq!(other, id, "{} is in saga {id}'s trace", span.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_saga_across_the_three_processes() {
    let receiver = OtlpReceiver::start().await.expect("OTLP receiver");
    let system = System::start_with_options(Backend::Sqlite, observed(&receiver, &[])).await;
    system.open_account("tracy", 10_000_000).await;

    let completed = system.start_saga("tracy", 500).await;
    let compensated = system.start_saga("tracy", REVIEW_LIMIT + 1).await;
    let statuses = system.wait_terminal(&[completed, compensated], LONG).await;
    assert_eq!(statuses[&completed], "completed");
    assert_eq!(statuses[&compensated], "compensated");

    // Three forward attempts; then two more with the compensations of create_order and
    // reserve_credit.
    let completed_trace = whole_trace(&receiver, &system, completed, 3).await;
    let compensated_trace = whole_trace(&receiver, &system, compensated, 5).await;
    for (id, trace) in [
        (completed, &completed_trace),
        (compensated, &compensated_trace),
    ] {
        assert_one_trace(&receiver, id, &trace[0].trace_id);
        let services: std::collections::BTreeSet<&str> =
            trace.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(
            services,
            ["saga-account", "saga-order", "saga-orchestrator"].into(),
            "saga {id} spans every process"
        );
        let root = trace
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .expect("a root span");
        assert_eq!(root.attribute("saga.name"), Some("place_order"));
        assert_eq!(root.attribute("saga.version"), Some("1"));
        assert!(
            trace
                .iter()
                .all(|s| s.start_unix_nano >= root.start_unix_nano),
            "nothing starts before the saga"
        );
    }
    assert_ne!(completed_trace[0].trace_id, compensated_trace[0].trace_id);
    insta::assert_snapshot!("completed_saga_trace", tree(&completed_trace));
    insta::assert_snapshot!("compensated_saga_trace", tree(&compensated_trace));

    // The step attempt spans carry the saga's coordinates and outcome.
    let approve = compensated_trace
        .iter()
        .find(|s| s.name == "step approve_order")
        .expect("approve_order's step span");
    assert_eq!(approve.attribute("saga.attempt"), Some("1"));
    assert_eq!(approve.attribute("saga.outcome"), Some("rejected"));
    assert_eq!(
        approve.error.as_deref(),
        Some("amount 1000001 exceeds the review limit 1000000")
    );

    // The participants' JSON log lines logged inside the saga's spans carry its trace id.
    let trace_id = &completed_trace[0].trace_id;
    let log = system.log(Service::Account);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["openTelemetry"]["traceId"] == trace_id.as_str()
                && l["openTelemetry"]["spanId"]
                    .as_str()
                    .is_some_and(|s| s.len() == 16)),
        "no account log line carries trace {trace_id}:\n{log}"
    );
}

/// The value of the Prometheus sample `name` whose labels include `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, value)| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_batch_of_sagas() {
    let receiver = OtlpReceiver::start().await.expect("OTLP receiver");
    let options = observed(
        &receiver,
        &[
            ("SAGA_OTLP_METRICS", "true"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    let system = System::start_with_options(Backend::Sqlite, options).await;
    system.open_account("metric", 10_000_000).await;
    let mut ids = Vec::new();
    for amount in [500, 600, 700, REVIEW_LIMIT + 1] {
        ids.push(system.start_saga("metric", amount).await);
    }
    system.wait_terminal(&ids, LONG).await;
    // And one command the account participant cannot read: a dead letter.
    system
        .client
        .publish("saga.cmd.account.ReserveCredit", "not an envelope".into())
        .await
        .expect("publish");
    let account = wait_for("the dead letter to be counted", LONG, || async {
        let text = system.metrics(Service::Account).await;
        let dead = sample(
            &text,
            "saga_dead_letters_total",
            &[("consumer", "participant-account")],
        );
        (dead == Some(1.0)).then_some(text)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));

    let orchestrator = system.metrics(Service::Orchestrator).await;
    let saga = ("saga", "place_order");
    let expect = |text: &str, name: &str, labels: &[(&str, &str)], value: f64| {
        assert_eq!(
            sample(text, name, labels),
            Some(value),
            "{name} {labels:?} in\n{text}"
        );
    };
    expect(&orchestrator, "saga_started_total", &[saga], 4.0);
    expect(&orchestrator, "saga_completed_total", &[saga], 3.0);
    expect(&orchestrator, "saga_compensated_total", &[saga], 1.0);
    assert_eq!(sample(&orchestrator, "saga_stuck_total", &[saga]), None);
    for (step, outcome, count) in [
        ("reserve_credit", "succeeded", 4.0),
        ("create_order", "succeeded", 4.0),
        ("approve_order", "succeeded", 3.0),
        ("approve_order", "rejected", 1.0),
    ] {
        let labels = [saga, ("step", step), ("outcome", outcome)];
        expect(&orchestrator, "saga_steps_total", &labels, count);
    }
    for step in ["create_order", "reserve_credit"] {
        let labels = [saga, ("step", step), ("outcome", "compensated")];
        expect(&orchestrator, "saga_compensations_total", &labels, 1.0);
    }
    let reserve = [
        saga,
        ("step", "reserve_credit"),
        ("kind", "forward"),
        ("outcome", "succeeded"),
    ];
    expect(
        &orchestrator,
        "saga_step_duration_seconds_count",
        &reserve,
        4.0,
    );
    expect(
        &orchestrator,
        "saga_duration_seconds_count",
        &[saga, ("outcome", "completed")],
        3.0,
    );
    expect(
        &orchestrator,
        "saga_duration_seconds_count",
        &[saga, ("outcome", "compensated")],
        1.0,
    );
    expect(&orchestrator, "saga_in_flight", &[], 0.0);
    expect(&orchestrator, "saga_overdue", &[], 0.0);
    // The lone replica leases every partition.
    expect(&orchestrator, "saga_partitions_owned", &[], 64.0);
    expect(
        &orchestrator,
        "saga_consumer_pending",
        &[("consumer", "orchestrator")],
        0.0,
    );

    let commands = |participant, command, outcome| {
        [
            ("participant", participant),
            ("command", command),
            ("outcome", outcome),
        ]
    };
    let total = "saga_participant_commands_total";
    expect(
        &account,
        total,
        &commands("account", "ReserveCredit", "succeeded"),
        4.0,
    );
    expect(
        &account,
        total,
        &commands("account", "ReleaseCredit", "succeeded"),
        1.0,
    );
    expect(
        &account,
        "saga_consumer_pending",
        &[("consumer", "participant-account")],
        0.0,
    );
    let order = system.metrics(Service::Order).await;
    expect(
        &order,
        total,
        &commands("order", "CreateOrder", "succeeded"),
        4.0,
    );
    expect(
        &order,
        total,
        &commands("order", "ApproveOrder", "succeeded"),
        3.0,
    );
    expect(
        &order,
        total,
        &commands("order", "ApproveOrder", "rejected"),
        1.0,
    );
    expect(
        &order,
        total,
        &commands("order", "CancelOrder", "succeeded"),
        1.0,
    );
    let handled = [("participant", "order"), ("command", "CreateOrder")];
    expect(
        &order,
        "saga_participant_handle_duration_seconds_count",
        &handled,
        4.0,
    );

    // The same instruments are exported over OTLP.
    wait_for("saga.started = 4 over OTLP", LONG, || async {
        receiver
            .points()
            .iter()
            .any(|p| {
                p.name == "saga.started"
                    && p.service == "saga-orchestrator"
                    && p.attributes.get("saga").map(String::as_str) == Some("place_order")
                    && p.value == 4.0
            })
            .then_some(())
    })
    .await
    .expect("metrics over OTLP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_resumed_after_the_orchestrator_was_killed_keeps_its_trace() {
    let receiver = OtlpReceiver::start().await.expect("OTLP receiver");
    let mut system = System::start_with_options(Backend::Sqlite, observed(&receiver, &[])).await;
    system.open_account("phoenix", 10_000).await;
    // With the order participant down, the saga waits on create_order once reserve_credit
    // is done.
    system.kill(Service::Order);
    let id = system.start_saga("phoenix", 500).await;
    system.wait_event(id, "StepSucceeded", LONG).await;
    let handled = wait_for("the account's spans of the saga", LONG, || async {
        receiver.spans().into_iter().find(|s| {
            s.name == "handle ReserveCredit" && s.attribute("saga.id") == Some(&id.to_string())
        })
    })
    .await
    .expect("account spans");
    let trace_id = handled.trace_id;

    // The orchestrator dies without a chance to flush; a new one resumes the saga.
    system.kill(Service::Orchestrator);
    system.spawn(Service::Order);
    system.spawn(Service::Orchestrator);
    system.wait_ready().await;
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "completed");

    // The new orchestrator records the rest of the saga in the same trace, under the same
    // root, and the order participant continues it.
    let root = wait_for("the saga's root span", LONG, || async {
        receiver.spans().into_iter().find(|s| {
            s.name == "saga place_order" && s.attribute("saga.id") == Some(&id.to_string())
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    assert_eq!(
        root.trace_id, trace_id,
        "the root span is in the first trace"
    );
    let step = wait_for("the create_order step span", LONG, || async {
        receiver
            .trace(&trace_id)
            .into_iter()
            .find(|s| s.name == "step create_order")
    })
    .await
    .expect("create_order step span");
    assert_eq!(step.service, "saga-orchestrator");
    assert_eq!(step.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    let order = wait_for("the order participant's spans", LONG, || async {
        receiver
            .trace(&trace_id)
            .into_iter()
            .find(|s| s.name == "handle ApproveOrder")
    })
    .await
    .expect("order spans");
    assert_eq!(order.service, "saga-order");
    assert_one_trace(&receiver, id, &trace_id);
    // The trace id stored with the saga is the one its spans were exported under.
    let saga = system.saga(id).await.expect("saga view");
    assert_eq!(saga["trace_id"].as_str(), Some(trace_id.as_str()));
}
