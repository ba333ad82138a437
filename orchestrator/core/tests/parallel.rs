//! Parallel groups and retriable steps, on the real `sagas/express_order.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Saga, command, express_order, ok, rejected};
use saga_core::{Action, Status};
use serde_json::json;

fn sent(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendCommand(c) | Action::SendCompensation(c) => Some(c.command.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_group_starts_together_and_the_pivot_waits_for_all_of_it() {
    let mut saga = Saga::given(express_order(), vec![]);
    let start = saga.start(500);
    assert_eq!(sent(&start), ["ReserveCredit", "CreateOrder"]);
    // The order is created first; the pivot waits for the credit too.
    assert!(sent(&saga.reply(&start[1], ok(json!({"order_id": "o-1"})))).is_empty());
    let approve = saga.reply(&start[0], ok(json!({"reserved": 500})));
    assert_eq!(sent(&approve), ["ApproveOrder"]);
    assert_eq!(command(&approve[0]).payload, json!({"order_id": "o-1"}));
    let confirm = saga.reply(&approve[0], ok(json!({"status": "approved"})));
    assert_eq!(sent(&confirm), ["ConfirmOrder"]);
    let done = saga.reply(&confirm[0], ok(json!({"confirmed": true})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Completed
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_refused_pivot_compensates_the_whole_group_in_parallel() {
    let mut saga = Saga::given(express_order(), vec![]);
    let start = saga.start(2_000_000);
    saga.reply(&start[0], ok(json!({"reserved": 2_000_000})));
    let approve = saga.reply(&start[1], ok(json!({"order_id": "o-1"})));
    let undo = saga.reply(
        &approve[0],
        rejected("amount 2000000 exceeds the review limit 1000000"),
    );
    let mut undo_cmds = sent(&undo);
    undo_cmds.sort();
    assert_eq!(undo_cmds, ["CancelOrder", "ReleaseCredit"]);
    assert!(sent(&saga.reply(&undo[0], ok(json!({})))).is_empty());
    let done = saga.reply(&undo[1], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_member_refused_while_the_other_runs_waits_for_it_then_undoes_it() {
    let mut saga = Saga::given(express_order(), vec![]);
    let start = saga.start(500);
    // The credit is refused while CreateOrder is still in flight: nothing is undone yet.
    let waiting = saga.reply(&start[0], rejected("insufficient credit"));
    assert!(sent(&waiting).is_empty());
    assert_eq!(saga.state.status, Status::Compensating);
    // CreateOrder succeeds after all: now it is cancelled; the credit has nothing to undo.
    let cancel = saga.reply(&start[1], ok(json!({"order_id": "o-1"})));
    assert_eq!(sent(&cancel), ["CancelOrder"]);
    let done = saga.reply(&cancel[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_retriable_step_after_the_pivot_is_retried_until_it_succeeds() {
    let mut saga = Saga::given(express_order(), vec![]);
    let start = saga.start(500);
    saga.reply(&start[0], ok(json!({})));
    let approve = saga.reply(&start[1], ok(json!({"order_id": "o-1"})));
    let confirm = saga.reply(&approve[0], ok(json!({"status": "approved"})));
    // Timeouts far beyond the policy's attempts: still retried, never compensated.
    let mut last = confirm;
    for _ in 0..6 {
        let clock = saga.clock;
        saga.tick(clock + 5_000);
        let again = saga.tick(clock + 40_000);
        if !sent(&again).is_empty() {
            last = again;
        }
    }
    assert!(
        command(&last[0]).attempt > 3,
        "attempt {}",
        command(&last[0]).attempt
    );
    assert_eq!(saga.state.status, Status::Running);
    let done = saga.reply(&last[0], ok(json!({"confirmed": true})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Completed
        }]
    );
}
