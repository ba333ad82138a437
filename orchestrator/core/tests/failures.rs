//! Failure semantics of the saga core: timeouts, retries, late replies, stuck sagas and
//! operator actions, each a whole story snapshotted with insta.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Saga, command, failed, ok, rejected, strict_place_order};
use saga_core::{Action, Input, OperatorCommand, Rejection, Status, decide};
use saga_protocol::Timestamp;
use serde_json::json;

#[test]
fn a_timeout_is_retried_with_backoff_and_a_late_reply_is_recorded() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let first = saga.start(500);
    // Nothing comes back within 1s: attempt 2 is scheduled 100ms later, then sent.
    saga.tick(2_010);
    let second = saga.tick(2_110);
    assert_eq!(command(&second[0]).attempt, 2);
    let next = saga.reply(&second[0], ok(json!({"reserved": 500})));
    assert_eq!(command(&next[0]).command, "CreateOrder");
    // The first attempt's reply arrives at last: recorded, and the saga does not move.
    let version = saga.state.version;
    assert!(
        saga.reply(&first[0], ok(json!({"reserved": 500})))
            .is_empty()
    );
    assert_eq!(saga.state.version, version + 1);
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_step_that_times_out_for_good_is_compensated_too() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(500);
    let create = saga.reply(&a[0], ok(json!({"reserved": 500})));
    saga.tick(2_020);
    saga.tick(2_120);
    // The second attempt times out as well: the outcome is unknown, so CancelOrder is sent
    // for create_order (it may have applied) before ReleaseCredit.
    let cancel = saga.tick(3_120);
    assert_eq!(command(&cancel[0]).command, "CancelOrder");
    let release = saga.reply(&cancel[0], ok(json!({})));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    // The late success of CreateOrder is recorded; its effect is already being undone.
    assert!(
        saga.reply(&create[0], ok(json!({"order_id": "o-1"})))
            .is_empty()
    );
    let done = saga.reply(&release[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_transient_failure_is_retried_and_then_succeeds() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(500);
    saga.reply(&a[0], failed("database unreachable"));
    let again = saga.tick(1_125);
    assert_eq!(command(&again[0]).attempt, 2);
    let next = saga.reply(&again[0], ok(json!({"reserved": 500})));
    assert_eq!(command(&next[0]).command, "CreateOrder");
    insta::assert_yaml_snapshot!(saga.story);
}

/// approve_order refused; CancelOrder fails, then its second attempt times out: Stuck on it.
#[test]
fn a_compensation_that_keeps_failing_gets_stuck_and_retry_completes_it() {
    let mut saga = common::stuck_on_cancel();
    assert_eq!(
        saga.state.reason.as_deref(),
        Some("compensation of `create_order` gave up after 2 attempts: no reply within 1s")
    );
    let cancel3 = saga.operator(OperatorCommand::Retry, "order database is back");
    assert_eq!(command(&cancel3[0]).attempt, 3);
    let release = saga.reply(&cancel3[0], ok(json!({})));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    let done = saga.reply(&release[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn skip_resolves_the_stuck_compensation_by_hand_and_goes_on() {
    let mut saga = common::stuck_on_cancel();
    let release = saga.operator(
        OperatorCommand::Skip,
        "order cancelled by hand in the back office",
    );
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    let done = saga.reply(&release[0], ok(json!({})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    let skipped = saga.state.step("create_order").unwrap();
    assert_eq!(skipped.status, saga_core::StepStatus::Skipped);
    insta::assert_yaml_snapshot!(saga.story.last().unwrap());
}

#[test]
fn abort_stops_the_saga_and_a_finished_saga_refuses_operators() {
    let mut saga = common::stuck_on_cancel();
    let done = saga.operator(OperatorCommand::Abort, "handled outside the system");
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Aborted
        }]
    );
    assert!(saga.state.in_flight().next().is_none());
    assert!(saga.state.timers().is_empty());
    let again = decide(&saga.def, &saga.state, Input::Tick, Timestamp(1_000_000)).unwrap();
    assert!(again.is_empty(), "an aborted saga never moves again");
    let refused = |cmd| {
        let action = saga_core::OperatorAction {
            command: cmd,
            by: "ops".into(),
            reason: "x".into(),
        };
        decide(
            &saga.def,
            &saga.state,
            Input::Operator(action),
            Timestamp(0),
        )
        .unwrap_err()
    };
    assert_eq!(
        refused(OperatorCommand::Abort),
        Rejection::Finished("aborted")
    );
    assert_eq!(
        refused(OperatorCommand::Retry),
        Rejection::NotStuck("aborted")
    );
    insta::assert_yaml_snapshot!(saga.story.last().unwrap());
}

#[test]
fn a_late_success_of_the_stuck_compensation_is_recorded_and_waits_for_the_operator() {
    let mut saga = common::stuck_on_cancel();
    // The second CancelOrder was in fact applied; its success arrives after the give-up.
    let second = saga.state.steps[1].compensation_attempt;
    let late = saga_protocol::ReplyEnvelope {
        schema_version: 1,
        message_id: saga_protocol::MessageId::from_raw("late"),
        command_id: saga_protocol::MessageId::command(
            saga.state.saga_id,
            "create_order",
            second,
            saga_protocol::CommandKind::Compensation,
        ),
        saga_id: saga.state.saga_id,
        step: "create_order".into(),
        attempt: second,
        kind: saga_protocol::CommandKind::Compensation,
        participant: "order".into(),
        outcome: ok(json!({})),
        occurred_at: Timestamp(saga.clock + 1),
    };
    assert!(
        saga.when("late CancelOrder succeeded", Input::Reply(late))
            .is_empty()
    );
    assert_eq!(saga.state.status, Status::Stuck);
    let cancel = saga.operator(OperatorCommand::Retry, "history shows CancelOrder applied");
    assert_eq!(command(&cancel[0]).command, "CancelOrder");
    insta::assert_yaml_snapshot!(&saga.story[saga.story.len() - 2..]);
}

#[test]
fn the_deadline_compensates_the_forward_path_but_not_after_the_pivot() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(500);
    saga.reply(&a[0], ok(json!({"reserved": 500})));
    // create_order keeps timing out and being retried until the deadline (60s after start).
    let release = saga.tick(61_010);
    assert!(
        release
            .iter()
            .any(|a| matches!(a, Action::SendCompensation(c) if c.command == "CancelOrder"))
    );
    insta::assert_yaml_snapshot!(saga.story.last().unwrap());

    let mut past_pivot = Saga::given(strict_place_order(), vec![]);
    let a = past_pivot.start(500);
    let a = past_pivot.reply(&a[0], ok(json!({})));
    let a = past_pivot.reply(&a[0], ok(json!({"order_id": "o-1"})));
    // The pivot times out: it is retried, never given up, and the deadline does not undo it.
    past_pivot.tick(past_pivot.clock + 1_000);
    let nothing = past_pivot.tick(61_010);
    assert!(
        nothing
            .iter()
            .all(|a| !matches!(a, Action::SendCompensation(_)))
    );
    assert_eq!(past_pivot.state.status, Status::Running);
    let _ = a;
}

#[test]
fn a_compensation_reading_the_output_of_a_step_that_timed_out_is_still_sent() {
    // The real place_order: CancelOrder maps `order_id` from create_order's output, which a
    // step that timed out never had.
    let mut saga = Saga::given(common::place_order(), vec![]);
    let a = saga.start(500);
    saga.reply(&a[0], ok(json!({"reserved": 500})));
    let mut now = saga.clock;
    let cancel = loop {
        now += 11_000;
        let actions = saga.tick(now);
        if let Some(Action::SendCompensation(c)) = actions.first() {
            break c.clone();
        }
        assert!(now < 100_000, "create_order never gave up");
    };
    assert_eq!(cancel.command, "CancelOrder");
    assert_eq!(
        cancel.payload,
        json!({}),
        "the order id is unknown; the effect key finds it"
    );
    assert_eq!(saga.state.status, Status::Compensating);
}

#[test]
fn a_copy_of_the_refusal_that_made_the_saga_stuck_changes_nothing() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(2_000_000);
    let a = saga.reply(&a[0], ok(json!({"reserved": 2_000_000})));
    let a = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    let cancel = saga.reply(&a[0], rejected("over the review limit"));
    let stuck = saga.reply(&cancel[0], rejected("the order is already shipped"));
    assert_eq!(
        stuck,
        vec![Action::Finish {
            status: Status::Stuck
        }]
    );
    let logged = saga.history.len();
    // JetStream redelivers the refusal: it is the reply already acted on, not a late one.
    saga.reply(&cancel[0], rejected("the order is already shipped"));
    assert_eq!(
        saga.history.len(),
        logged,
        "{:?}",
        saga.story.last().map(|t| &t.then)
    );
    assert_eq!(saga.state.status, Status::Stuck);
    insta::assert_yaml_snapshot!(&saga.story[saga.story.len() - 2..]);
}

#[test]
fn a_saga_whose_definition_is_missing_gets_stuck_and_retry_resumes_it() {
    let mut saga = Saga::given(common::place_order(), vec![]);
    let reserve = saga.start(500);
    // Given its definition neither loaded nor stored, the runtime cannot decide anything for
    // it: the saga becomes Stuck with the reason instead of silently staying `running`.
    let stalled = saga.stall("definition `place_order` version 1 is neither loaded nor stored");
    assert_eq!(
        stalled,
        vec![Action::Finish {
            status: Status::Stuck
        }],
        "nothing to send"
    );
    assert_eq!(saga.state.status, Status::Stuck);
    // Stalling it again changes nothing; skipping has nothing to skip.
    assert!(
        saga_core::stall(&saga.state, "again".into(), Timestamp(0))
            .unwrap()
            .is_empty()
    );
    let skip = saga_core::OperatorAction {
        command: OperatorCommand::Skip,
        by: "ops".into(),
        reason: "x".into(),
    };
    assert_eq!(
        decide(&saga.def, &saga.state, Input::Operator(skip), Timestamp(0)).unwrap_err(),
        Rejection::Stalled
    );
    // When the definition is back, a retry resumes it as it was going: the command that was in
    // flight is sent again as its next attempt (same effect at the participant), and its
    // reply moves the saga on.
    let resumed = saga.operator(OperatorCommand::Retry, "definition restored");
    assert_eq!(saga.state.status, Status::Running);
    assert_eq!(command(&resumed[0]).command, "ReserveCredit");
    assert_eq!(command(&resumed[0]).attempt, 2);
    // The first attempt's reply, dead-lettered while the saga was stalled, is late if it comes.
    assert!(
        saga.reply(&reserve[0], ok(json!({"reserved": 500})))
            .is_empty()
    );
    let next = saga.reply(&resumed[0], ok(json!({"reserved": 500})));
    assert_eq!(command(&next[0]).command, "CreateOrder");
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn only_a_saga_in_flight_can_be_stalled() {
    let mut saga = Saga::given(common::place_order(), vec![]);
    assert_eq!(
        saga_core::stall(&saga.state, "x".into(), Timestamp(0)).unwrap_err(),
        Rejection::NotStarted
    );
    let reserve = saga.start(500);
    let create = saga.reply(&reserve[0], ok(json!({"reserved": 500})));
    let approve = saga.reply(&create[0], ok(json!({"order_id": "o-1"})));
    saga.reply(&approve[0], ok(json!({})));
    assert_eq!(saga.state.status, Status::Completed);
    assert_eq!(
        saga_core::stall(&saga.state, "x".into(), Timestamp(0)).unwrap_err(),
        Rejection::Finished("completed")
    );
}

#[test]
fn a_command_too_large_for_the_bus_fails_its_step_instead_of_being_sent() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let customer_id = "c".repeat(saga_protocol::limits::MAX_COMMAND_PAYLOAD);
    let actions = saga.when(
        "start with a customer id as long as a whole command may be",
        Input::Start {
            input: json!({"customer_id": customer_id, "amount": 5}),
            trace_context: None,
        },
    );
    // Nothing is published: the first step cannot be sent, and nothing needs undoing.
    assert_eq!(
        actions,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    // The story, with the long input written short.
    for turn in &mut saga.story {
        for occurred in &mut turn.then {
            if let saga_core::Event::SagaStarted { input, .. } = &mut occurred.event {
                *input = json!({"customer_id": "c × 524288", "amount": 5});
            }
        }
    }
    insta::assert_yaml_snapshot!(saga.story);
}

/// Found by `saga simulate`: attempt 1 of ReserveCredit is delayed past its timeout, the
/// retry is refused (no credit yet), and attempt 1 arrives later and reserves. The refusal
/// proves nothing about attempt 1, so the step is compensated like one of unknown outcome:
/// ReleaseCredit shares the effect key, and leaves a tombstone that refuses the late attempt.
#[test]
fn a_retry_refused_while_an_earlier_attempt_may_still_apply_is_compensated() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    saga.start(500);
    saga.tick(2_010);
    let second = saga.tick(2_110);
    assert_eq!(command(&second[0]).attempt, 2);
    let release = saga.reply(&second[0], rejected("insufficient credit"));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    assert_eq!(
        command(&release[0]).effect_key,
        command(&second[0]).effect_key
    );
    let done = saga.reply(&release[0], ok(json!({"released": 0, "tombstone": true})));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

/// A transient failure is not recorded by the participant (its database was away), so a copy
/// of that attempt may still apply: a later refusal is compensated the same way.
#[test]
fn a_retry_refused_after_a_transient_failure_is_compensated() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let first = saga.start(500);
    saga.reply(&first[0], failed("account database unreachable"));
    let second = saga.tick(1_125);
    let release = saga.reply(&second[0], rejected("insufficient credit"));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
    // Refused on its first attempt, a step has nothing to undo.
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let first = saga.start(500);
    let done = saga.reply(&first[0], rejected("insufficient credit"));
    assert_eq!(
        done,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
}

/// The pivot refused on attempt 2 while attempt 1 timed out: a pivot's participant records
/// its refusal under the effect key (the order keeps the order `rejected`), so the late
/// attempt 1 is refused too, and nothing undoes a pivot anyway. The refusal is final: the saga
/// compensates what came before it, newest first.
#[test]
fn a_pivot_refused_on_a_retry_is_final_and_the_saga_compensates() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let a = saga.start(500);
    let a = saga.reply(&a[0], ok(json!({"reserved": 500})));
    let approve = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    assert_eq!(command(&approve[0]).command, "ApproveOrder");
    let clock = saga.clock;
    saga.tick(clock + 1_010);
    let second = saga.tick(clock + 1_500);
    assert_eq!(command(&second[0]).attempt, 2);
    let cancel = saga.reply(&second[0], rejected("over the review limit"));
    assert_eq!(command(&cancel[0]).command, "CancelOrder");
    assert_eq!(saga.state.status, Status::Compensating);
    insta::assert_yaml_snapshot!(saga.story);
}

/// Found by `saga simulate`: attempt 2 reached the participant before the delayed attempt 1
/// and was refused; attempt 1 then reserved, and its success came back late. The effect
/// exists, so the refusal of attempt 2 is compensated like any step that applied.
#[test]
fn a_retry_refused_after_the_first_attempt_succeeded_late_is_compensated() {
    let mut saga = Saga::given(strict_place_order(), vec![]);
    let first = saga.start(500);
    saga.tick(2_010);
    let second = saga.tick(2_110);
    assert!(
        saga.reply(&first[0], ok(json!({"reserved": 500})))
            .is_empty()
    );
    let release = saga.reply(&second[0], rejected("insufficient credit"));
    assert_eq!(command(&release[0]).command, "ReleaseCredit");
}
