//! Given/when/then tests of the saga core on the real `sagas/place_order.toml`, each
//! snapshotting the whole story: every input, the events it caused and the actions asked for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Saga, command, ok, place_order, rejected};
use saga_core::{Action, Event, Input, SagaState, Status, decide};
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;
use serde_json::json;

/// What the store knows of a row, for decoding in tests.
const STORED: Stored = Stored {
    recorded_at: Timestamp(0),
};

#[test]
fn all_steps_succeed() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    let a = saga.reply(&a[0], ok(json!({"reserved": 500})));
    let a = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    let a = saga.reply(&a[0], ok(json!({"status": "approved"})));
    assert_eq!(
        a,
        vec![Action::Finish {
            status: Status::Completed
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn reserve_credit_rejected_has_nothing_to_undo() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(5_000);
    let a = saga.reply(
        &a[0],
        rejected("insufficient credit: available 100, requested 5000"),
    );
    assert_eq!(
        a,
        vec![Action::Finish {
            status: Status::Compensated
        }]
    );
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn approve_order_rejected_cancels_the_order_then_releases_the_credit() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(2_000_000);
    let a = saga.reply(&a[0], ok(json!({"reserved": 2_000_000})));
    let a = saga.reply(&a[0], ok(json!({"order_id": "o-1"})));
    let cancel = saga.reply(
        &a[0],
        rejected("amount 2000000 exceeds the review limit 1000000"),
    );
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
    insta::assert_yaml_snapshot!(saga.story);
}

#[test]
fn a_duplicate_reply_changes_nothing() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    let next = saga.reply(&a[0], ok(json!({"reserved": 500})));
    assert_eq!(command(&next[0]).command, "CreateOrder");
    let version = saga.state.version;
    let again = saga.reply(&a[0], ok(json!({"reserved": 500})));
    assert!(again.is_empty());
    assert_eq!(saga.state.version, version);
}

#[test]
fn in_flight_commands_are_rebuilt_identically_from_the_log() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    let sent = command(&a[0]).clone();
    // After a crash the runtime replays the log: the same command, byte for byte.
    let replayed = SagaState::replay(saga.state.saga_id, &saga.history);
    let again: Vec<_> = replayed.in_flight().cloned().collect();
    assert_eq!(again, vec![sent]);
    assert_eq!(replayed, saga.state);
}

#[test]
fn time_travel_is_a_fold_of_a_prefix() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    saga.reply(&a[0], ok(json!({"reserved": 500})));
    let as_of_2 = SagaState::replay(saga.state.saga_id, &saga.history[..2]);
    assert_eq!(as_of_2.status, Status::Running);
    assert_eq!(as_of_2.steps.len(), 1);
    assert_eq!(as_of_2.version, 2);
}

#[test]
fn starting_twice_or_with_bad_input_is_refused() {
    let mut saga = Saga::given(place_order(), vec![]);
    let bad = decide(
        &saga.def,
        &saga.state,
        Input::Start {
            input: json!({"customer_id": "c"}),
            trace_context: None,
        },
        Timestamp(0),
    );
    insta::assert_snapshot!(bad.unwrap_err().to_string(), @"invalid input: missing input field `amount` (integer)");
    saga.start(1);
    let again = decide(
        &saga.def,
        &saga.state,
        Input::Start {
            input: json!({}),
            trace_context: None,
        },
        Timestamp(0),
    );
    assert_eq!(again.unwrap_err(), saga_core::Rejection::AlreadyStarted);
}

#[test]
fn stored_events_read_back_as_written() {
    let mut saga = Saga::given(place_order(), vec![]);
    let a = saga.start(500);
    saga.reply(&a[0], rejected("no"));
    for occurred in &saga.history {
        let e = &occurred.event;
        let back =
            Event::decode(e.type_name(), e.schema_version(), &e.to_payload(), &STORED).unwrap();
        assert_eq!(&back, e);
    }
    let err = Event::decode("SagaStarted", 9, &json!({}), &STORED).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"saga event SagaStarted has schema version 9, newer than this build reads (up to 1): it was written by a newer build");
}

#[test]
fn the_trace_context_given_at_start_is_recorded_and_survives_replay() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = SagaState::new(uuid::Uuid::nil());
    let start = Input::Start {
        input: json!({"customer_id": "c-1", "amount": 5}),
        trace_context: Some(traceparent.into()),
    };
    let events = decide(&place_order(), &state, start, Timestamp(0)).unwrap();
    let Event::SagaStarted { trace_context, .. } = &events[0].event else {
        panic!("the first event is {:?}", events[0].event);
    };
    assert_eq!(trace_context.as_deref(), Some(traceparent));
    // Stored and read back (as after a restart), the fold still knows the saga's trace.
    let stored: Vec<_> = events
        .iter()
        .map(|o| saga_core::Occurred {
            at: o.at,
            event: Event::decode(o.event.type_name(), 1, &o.event.to_payload(), &STORED).unwrap(),
        })
        .collect();
    let replayed = SagaState::replay(uuid::Uuid::nil(), &stored);
    assert_eq!(replayed.trace_context.as_deref(), Some(traceparent));
    // Without tracing nothing is stored: old logs and new ones without it read the same.
    let payload = Event::SagaStarted {
        name: "n".into(),
        definition_version: 1,
        definition_hash: None,
        input: json!({}),
        deadline_at: None,
        trace_context: None,
    }
    .to_payload();
    assert!(payload.get("trace_context").is_none());
}

#[test]
fn saga_started_records_the_definition_hash_and_old_logs_without_it_still_read() {
    let def = place_order();
    let start = Input::Start {
        input: json!({"customer_id": "c-1", "amount": 5}),
        trace_context: None,
    };
    let events = decide(
        &def,
        &SagaState::new(uuid::Uuid::nil()),
        start,
        Timestamp(0),
    )
    .unwrap();
    let Event::SagaStarted {
        definition_hash, ..
    } = &events[0].event
    else {
        panic!("the first event is {:?}", events[0].event);
    };
    assert_eq!(definition_hash.as_deref(), Some(def.hash.as_str()));
    // A SagaStarted stored before definitions were hashed has no such field.
    let old = json!({"name": "place_order", "definition_version": 1, "input": {}});
    let decoded = Event::decode("SagaStarted", 1, &old, &STORED).unwrap();
    let state = SagaState::replay(
        uuid::Uuid::nil(),
        &[saga_core::Occurred {
            at: Timestamp(0),
            event: decoded,
        }],
    );
    assert_eq!((state.definition_version, state.definition_hash), (1, None));
}
