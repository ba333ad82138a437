//! An operator's control of a saga: cancel undoes a running saga before its pivot exactly as
//! a failure would; abort stops only a stuck one, and its status lists what it left applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Saga, command, ok, place_order};
use saga_core::{
    Action, Input, OperatorAction, OperatorCommand, Rejection, Status, StepStatus, decide,
};
use saga_protocol::{CommandKind, Timestamp};
use serde_json::json;

/// What `command` by `ops` would be refused with, leaving the saga as it is.
fn refused(saga: &Saga, command: OperatorCommand) -> Rejection {
    let action = OperatorAction {
        command,
        by: "ops".into(),
        reason: "x".into(),
    };
    decide(
        &saga.def,
        &saga.state,
        Input::Operator(action),
        Timestamp(saga.clock),
    )
    .unwrap_err()
}

#[test]
fn a_cancel_waits_for_the_command_in_flight_then_compensates_in_reverse_order() {
    // Given a saga whose credit is reserved and whose order is being created.
    let mut saga = Saga::given(place_order(), vec![]);
    let reserve = saga.start(500);
    let create = saga.reply(&reserve[0], ok(json!({"reserved": 500})));
    assert_eq!(command(&create[0]).command, "CreateOrder");
    // When an operator cancels it: nothing is sent while CreateOrder may still apply.
    let cancelled = saga.operator(OperatorCommand::Cancel, "the customer changed their mind");
    assert!(cancelled.is_empty(), "{cancelled:?}");
    assert_eq!(saga.state.status, Status::Compensating);
    // Then the order, once created, is cancelled, then the credit released.
    let cancel_order = saga.reply(&create[0], ok(json!({"order_id": "o-1"})));
    assert_eq!(command(&cancel_order[0]).command, "CancelOrder");
    assert_eq!(command(&cancel_order[0]).kind, CommandKind::Compensation);
    let release = saga.reply(&cancel_order[0], ok(json!({})));
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
        Some("cancelled by ops: the customer changed their mind")
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_cancel_after_the_pivot_is_refused_and_the_saga_goes_on() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    let a = saga.reply(&a[0], ok(json!({"reserved": 500})));
    let approve = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    assert_eq!(command(&approve[0]).command, "ApproveOrder");
    let refusal = refused(&saga, OperatorCommand::Cancel);
    assert_eq!(refusal, Rejection::PastPivot("approve_order".into()));
    insta::assert_snapshot!(refusal.to_string(), @"the saga has sent its pivot step `approve_order`: what it did from there on cannot be undone, so it can only finish forward");
}

#[test]
fn abort_is_refused_on_a_saga_that_is_not_stuck() {
    let mut saga = Saga::given(place_order(), vec![]);
    saga.start(500);
    let refusal = refused(&saga, OperatorCommand::Abort);
    assert_eq!(refusal, Rejection::NotStuck("running"));
    insta::assert_snapshot!(refusal.to_string(), @"the saga is running, not stuck: only a stuck saga can be retried, skipped or aborted (cancel a running one to undo it)");
}

#[test]
fn a_stuck_saga_is_not_cancelled_but_aborted_and_its_effects_left_are_listed() {
    // Given a saga stuck on the compensation of create_order (the order database is away),
    // its credit still reserved.
    let mut saga = common::stuck_on_cancel();
    assert_eq!(saga.state.status, Status::Stuck);
    assert_eq!(
        refused(&saga, OperatorCommand::Cancel),
        Rejection::NotRunning("stuck")
    );
    // When an operator aborts it.
    saga.operator(OperatorCommand::Abort, "handled by the back office");
    // Then what it left applied is listed: the order (its cancel never confirmed) and the
    // credit (never released).
    assert_eq!(saga.state.status, Status::Aborted);
    let left: Vec<(&str, StepStatus)> = saga
        .state
        .effects_left()
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        left,
        [
            ("reserve_credit", StepStatus::Succeeded),
            ("create_order", StepStatus::Compensating)
        ]
    );
}
