//! Await steps on the real `sagas/approved_order.toml`: the saga waits for a named signal,
//! takes its payload as the step's output, compensates when it does not come in time, and
//! records and ignores a signal that comes twice or late.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Saga, approved_order, command, ok};
use saga_core::{Action, Event, Input, Rejection, Status, StepStatus, decide};
use saga_protocol::Timestamp;
use serde_json::json;

/// A saga of approved_order whose order is created: it waits for `approval`.
fn waiting() -> Saga {
    let mut saga = Saga::given(approved_order(), vec![]);
    let reserve = saga.start(500);
    let create = saga.reply(&reserve[0], ok(json!({"reserved": 500})));
    let waits = saga.reply(&create[0], ok(json!({"order_id": "o-1"})));
    // Nothing to send: only the timer of the wait.
    assert!(
        waits
            .iter()
            .all(|a| matches!(a, Action::ScheduleTimer { .. })),
        "{waits:?}"
    );
    let step = saga.state.step("manager_approval").unwrap();
    assert_eq!(step.status, StepStatus::Waiting);
    saga
}

fn refused(saga: &Saga, name: &str, payload: serde_json::Value) -> Rejection {
    let input = Input::Signal {
        name: name.into(),
        payload,
    };
    decide(&saga.def, &saga.state, input, Timestamp(saga.clock)).unwrap_err()
}

#[test]
fn the_signal_s_payload_is_the_step_s_output_and_the_saga_goes_on() {
    let mut saga = waiting();
    let approve = saga.signal("approval", json!({"approved_by": "maria"}));
    assert_eq!(command(&approve[0]).command, "ApproveOrder");
    assert_eq!(command(&approve[0]).payload, json!({"order_id": "o-1"}));
    let output = saga.state.step("manager_approval").unwrap().output.clone();
    assert_eq!(output, Some(json!({"approved_by": "maria", "note": ""})));
    let done = saga.reply(&approve[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Completed
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn no_signal_before_the_timeout_compensates_what_was_done_in_reverse_order() {
    let mut saga = waiting();
    let timeout_at = saga
        .state
        .step("manager_approval")
        .unwrap()
        .timeout_at
        .unwrap();
    assert!(saga.tick(timeout_at.millis() - 1).is_empty(), "not yet");
    let cancel = saga.tick(timeout_at.millis());
    assert_eq!(command(&cancel[0]).command, "CancelOrder");
    let release = saga.reply(&cancel[0], ok(json!({})));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    let done = saga.reply(&release[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    assert_eq!(
        saga.state.reason.as_deref(),
        Some("manager_approval: no signal `approval` within 1h")
    );
    // The approval that comes after all that is recorded, and changes nothing.
    let late = saga.signal("approval", json!({"approved_by": "maria"}));
    assert!(late.is_empty());
    assert_eq!(saga.state.status, Status::Compensated);
    insta::assert_yaml_snapshot!(saga.story.last().unwrap());
}

#[test]
fn a_second_signal_is_recorded_and_ignored() {
    let mut saga = waiting();
    let approve = saga.signal("approval", json!({"approved_by": "maria"}));
    assert_eq!(command(&approve[0]).command, "ApproveOrder");
    let again = saga.signal("approval", json!({"approved_by": "someone else"}));
    assert!(again.is_empty());
    let Event::SignalIgnored { reason, .. } = &saga.history.last().unwrap().event else {
        panic!("{:?}", saga.history.last());
    };
    assert_eq!(reason, "step `manager_approval` received it already");
    let output = saga.state.step("manager_approval").unwrap().output.clone();
    assert_eq!(output.unwrap()["approved_by"], "maria");
}

#[test]
fn a_signal_that_does_not_fit_or_comes_too_early_is_refused_and_changes_nothing() {
    let mut saga = Saga::given(approved_order(), vec![]);
    saga.start(500);
    assert_eq!(
        refused(&saga, "approval", json!({"approved_by": "maria"})),
        Rejection::NotAwaiting {
            signal: "approval".into(),
            step: "manager_approval".into()
        }
    );
    let saga = waiting();
    let refusals: Vec<String> = [
        refused(&saga, "approvall", json!({})),
        refused(&saga, "approval", json!({"approved_by": ""})),
        refused(&saga, "approval", json!({"note": "ok"})),
        refused(&saga, "approval", json!("yes")),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    insta::assert_snapshot!(refusals.join("\n"), @r"
    no step of this saga awaits a signal named `approvall`
    signal field `approved_by` must have at least 1 characters, got 0
    missing signal field `approved_by` (string)
    a signal's payload must be a JSON object
    ");
}

#[test]
fn a_cancel_while_waiting_stops_the_wait_and_compensates() {
    let mut saga = waiting();
    let waits_until = saga
        .state
        .step("manager_approval")
        .unwrap()
        .timeout_at
        .unwrap();
    let cancel = saga.operator(saga_core::OperatorCommand::Cancel, "the customer withdrew");
    assert_eq!(command(&cancel[0]).command, "CancelOrder");
    let step = saga.state.step("manager_approval").unwrap();
    assert_eq!((step.status, step.timeout_at), (StepStatus::Rejected, None));
    assert!(
        !saga.state.timers().contains(&waits_until),
        "the wait's timer is gone"
    );
}
