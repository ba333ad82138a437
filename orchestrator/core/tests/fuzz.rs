//! Fuzzing the core's input decoders (proptest): the TOML definition parser and validator,
//! the stored-event decoder and the wire envelopes. Inputs are random bytes, and the
//! repository's own definitions and valid envelopes with random edits (bytes replaced,
//! inserted, deleted, lines cut), so most cases get past the first byte. Each decoder must
//! answer Ok or a located error, never panic; what decodes re-encodes to the same value.
//!
//! `make test` runs 256 cases a target; a longer run: `PROPTEST_CASES=100000 cargo test
//! -p saga-core --test fuzz --release`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use saga_core::{Catalogue, Definition, Event};
use saga_protocol::{CommandEnvelope, ReplyEnvelope};

fn repository_file(name: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sagas");
    std::fs::read_to_string(root.join(name)).unwrap()
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Keeps only the first part, as a file cut short.
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'['),
                    Just(b']'),
                    Just(b'='),
                    Just(b'\n'),
                    Just(b'{'),
                    Just(b'.'),
                    Just(0xff),
                    any::<u8>()
                ],
                1..8
            )
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..6)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::Replace(at, b) => {
                if let Some(slot) = bytes.get_mut(at % len) {
                    *slot = *b;
                }
            }
            Edit::Insert(at, more) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, more.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
        }
    }
    bytes
}

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("saga_id".to_string()),
                    Just("step".to_string()),
                    Just("by".to_string()),
                    Just("reason".to_string()),
                    Just("input".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Parses `src` as a definition (with the catalogue when given): Ok, or errors whose every
/// position lies inside the source, and which render.
fn check_definition(src: &str, catalogue: Option<&Catalogue>) {
    match Definition::parse("fuzz.toml", src, catalogue) {
        Ok(definition) => assert!(!definition.name.is_empty()),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a diagnostic");
            let lines = src.lines().count().max(1);
            for e in &errors.0 {
                assert!(
                    e.line >= 1 && e.line <= lines + 1,
                    "{e:?} outside {lines} lines"
                );
                assert!(
                    e.span.start <= src.len() && e.span.end <= src.len(),
                    "{e:?}"
                );
                assert!(!e.message.is_empty());
            }
            let _ = saga_core::definition::render(&errors, src);
        }
    }
}

proptest! {
    #[test]
    fn a_definition_edited_at_random_is_read_or_refused_at_a_place(edits in edits()) {
        let catalogue = Catalogue::from_toml(
            "participants.toml",
            &repository_file("participants.toml"),
        )
        .unwrap();
        for file in ["place_order.toml", "express_order.toml"] {
            let bytes = apply(repository_file(file).into_bytes(), &edits);
            // A file that is not UTF-8 never reaches the parser (it is read as a string).
            if let Ok(src) = String::from_utf8(bytes) {
                check_definition(&src, None);
                check_definition(&src, Some(&catalogue));
            }
        }
    }

    #[test]
    fn random_text_is_never_a_panic_in_the_definition_parser(src in "(?s).{0,400}") {
        check_definition(&src, None);
    }

    #[test]
    fn a_catalogue_edited_at_random_is_read_or_refused(edits in edits()) {
        let bytes = apply(repository_file("participants.toml").into_bytes(), &edits);
        if let Ok(src) = String::from_utf8(bytes) {
            let _ = Catalogue::from_toml("participants.toml", &src);
        }
    }

    #[test]
    fn a_stored_event_of_any_shape_decodes_or_is_refused(
        type_name in prop_oneof![
            Just("SagaStarted"), Just("StepStarted"), Just("StepSucceeded"),
            Just("StepRejected"), Just("CommandTimedOut"), Just("SagaAborted"),
            Just("OperatorRetried"), Just("StepSkipped"), Just("SagaCancelled"), Just("SagaCompleted"),
            Just("NoSuchEvent"),
        ],
        version in prop_oneof![Just(1u32), any::<u32>()],
        payload in json(),
    ) {
        let stored = saga_protocol::upcast::Stored { recorded_at: saga_protocol::Timestamp(0) };
        if let Ok(event) = Event::decode(type_name, version, &payload, &stored) {
            // Written again, it is written at its newest version.
            let again =
                Event::decode(event.type_name(), event.schema_version(), &event.to_payload(), &stored)
                    .unwrap();
            prop_assert_eq!(again, event);
        }
    }

    #[test]
    fn envelopes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = CommandEnvelope::decode(&bytes);
        let _ = ReplyEnvelope::decode(&bytes);
    }

    #[test]
    fn an_envelope_edited_at_random_decodes_to_what_it_encodes(edits in edits()) {
        let command = valid_command();
        let bytes = apply(command.encode(), &edits);
        if let Ok(decoded) = CommandEnvelope::decode(&bytes) {
            prop_assert_eq!(CommandEnvelope::decode(&decoded.encode()).unwrap(), decoded);
        }
        let reply = ReplyEnvelope::answering(
            &command,
            saga_protocol::Outcome::Rejected { reason: "no funds".into() },
            saga_protocol::Timestamp::now(),
        );
        let bytes = apply(reply.encode(), &edits);
        if let Ok(decoded) = ReplyEnvelope::decode(&bytes) {
            prop_assert_eq!(ReplyEnvelope::decode(&decoded.encode()).unwrap(), decoded);
        }
    }
}

fn valid_command() -> CommandEnvelope {
    let json = serde_json::json!({
        "schema_version": 1,
        "message_id": "5b1f8e8e-0000-4000-8000-000000000001.reserve_credit.1",
        "saga_id": "5b1f8e8e-0000-4000-8000-000000000001",
        "saga_name": "place_order",
        "step": "reserve_credit",
        "attempt": 1,
        "kind": "forward",
        "participant": "account",
        "command": "ReserveCredit",
        "effect_key": "5b1f8e8e-0000-4000-8000-000000000001.reserve_credit",
        "payload": {"customer_id": "c-1", "amount": 500},
        "sent_at": 1_764_000_000_000u64,
    });
    CommandEnvelope::decode(json.to_string().as_bytes()).unwrap()
}
