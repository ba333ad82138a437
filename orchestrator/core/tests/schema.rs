//! Old logs stay readable: stored rows as an earlier build wrote them (version 1 of every
//! event type, in `fixtures/`) are read through the upcasters, replayed to the same state, and
//! shown in the newest shape; written again they are written at the newest version.
//!
//! The fixtures are data, never regenerated: they are what version 1 stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::{EVENT_SCHEMA, Event, Occurred, SagaState, upcast};
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// A row of `saga_events` as the store returns it.
#[derive(Deserialize)]
struct Row {
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u32,
    payload: Value,
    occurred_at: i64,
    recorded_at: i64,
}

impl Row {
    fn stored(&self) -> Stored {
        Stored {
            recorded_at: Timestamp(self.recorded_at),
        }
    }
}

fn rows(fixture: &str) -> Vec<Row> {
    serde_json::from_str(fixture).unwrap()
}

/// Given the rows, when they are read and replayed: the state, and the log as it is shown.
fn read(rows: &[Row]) -> (SagaState, Vec<Occurred>, Vec<Value>) {
    let occurred: Vec<Occurred> = rows
        .iter()
        .map(|r| Occurred {
            at: Timestamp(r.occurred_at),
            event: Event::decode(&r.event_type, r.schema_version, &r.payload, &r.stored())
                .unwrap_or_else(|e| panic!("{e}")),
        })
        .collect();
    let state = SagaState::replay(Uuid::from_u128(0x5a6a), &occurred);
    let shown = rows
        .iter()
        .map(|r| {
            let data = upcast(
                &r.event_type,
                r.schema_version,
                r.payload.clone(),
                &r.stored(),
            )
            .unwrap();
            json!({"type": r.event_type, "stored_version": r.schema_version, "data": data})
        })
        .collect();
    (state, occurred, shown)
}

/// Written again, each event goes out at the newest version of its type and reads the same.
fn rewritten_reads_the_same(occurred: &[Occurred]) {
    let stored = Stored {
        recorded_at: Timestamp(0),
    };
    for o in occurred {
        let e = &o.event;
        let version = e.schema_version();
        assert_eq!(version, EVENT_SCHEMA.version_of(e.type_name()));
        let back = Event::decode(e.type_name(), version, &e.to_payload(), &stored).unwrap();
        assert_eq!(&back, e);
    }
}

fn operator_events(shown: &[Value]) -> Vec<&Value> {
    shown
        .iter()
        .filter(|e| e["stored_version"] == 1 && e["data"].get("by").is_some())
        .collect()
}

#[test]
fn the_saga_log_schema_has_one_upcaster_per_step_of_every_type() {
    assert_eq!(EVENT_SCHEMA.problems(), Vec::<String>::new());
    for (event_type, newest) in EVENT_SCHEMA.newest {
        assert!(*newest >= 2, "{event_type}");
    }
}

#[test]
fn a_version_1_log_retried_then_skipped_by_hand_is_read_replayed_and_shown_anew() {
    // Given a saga stuck on a compensation, retried by an operator, stuck again and skipped,
    // as version 1 stored it (`by` was the operator's name alone).
    let rows = rows(include_str!("fixtures/v1_retried_then_skipped.json"));
    // When it is read.
    let (state, occurred, shown) = read(&rows);
    // Then it replays to where it ended, and the operators read as operators of no role.
    assert_eq!(state.status, saga_core::Status::Compensated);
    let operators = operator_events(&shown);
    assert_eq!(operators.len(), 2, "{shown:#?}");
    insta::assert_yaml_snapshot!(operators);
    rewritten_reads_the_same(&occurred);
}

#[test]
fn a_version_1_log_aborted_by_hand_is_read_replayed_and_shown_anew() {
    // Given a saga stuck on a compensation and aborted, as version 1 stored it.
    let rows = rows(include_str!("fixtures/v1_aborted.json"));
    // When it is read.
    let (state, occurred, shown) = read(&rows);
    // Then it is aborted, with the operator in its reason as version 1 showed it.
    assert_eq!(state.status, saga_core::Status::Aborted);
    insta::assert_snapshot!(state.reason.unwrap_or_default(), @"aborted by ops: handled outside the system");
    insta::assert_yaml_snapshot!("v1_aborted_operator_events", operator_events(&shown));
    rewritten_reads_the_same(&occurred);
}

#[test]
fn a_stored_event_newer_than_this_build_is_refused_with_its_version() {
    let stored = Stored {
        recorded_at: Timestamp(0),
    };
    let by = json!({"by": {"name": "ops"}, "reason": "x"});
    let err = Event::decode("SagaAborted", 3, &by, &stored).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"saga event SagaAborted has schema version 3, newer than this build reads (up to 2): it was written by a newer build");
    let v1_shape_at_v2 = json!({"by": "ops", "reason": "x"});
    assert!(Event::decode("SagaAborted", 2, &v1_shape_at_v2, &stored).is_err());
}
