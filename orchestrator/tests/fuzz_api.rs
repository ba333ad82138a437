//! Fuzzing the HTTP API's request extractors (proptest): random methods on the API's route
//! shapes with random path segments (percent-encoded, invalid UTF-8 escapes among them),
//! query strings, headers and bodies (random bytes, and valid inputs with random edits), sent
//! through the router to an orchestrator over the in-memory store and transport. Every
//! request is answered within a deadline and never with a server error: bad input is the
//! caller's (4xx), never a panic or a hang.
//!
//! `make test` runs 256 cases; a longer run: `PROPTEST_CASES=20000 cargo test -p
//! saga-orchestrator --test fuzz_api --release`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::transport::MemoryTransport;
use std::time::Duration;
use tower::ServiceExt;

/// A path segment: printable text percent-encoded, a raw escape (maybe not UTF-8), a UUID, or
/// a real name.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,16}".prop_map(|s| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        }),
        prop::collection::vec(any::<u8>(), 1..4)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect()),
        Just("5b1f8e8e-0000-4000-8000-000000000001".to_string()),
        Just("place_order".to_string()),
        Just("retry".to_string()),
        Just("abort".to_string()),
        Just("cancel".to_string()),
        Just("1".to_string()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (0usize..9, segment(), segment()).prop_map(|(shape, a, b)| match shape {
        0 => "/v1/sagas".to_string(),
        1 => format!("/v1/sagas/{a}"),
        2 => format!("/v1/sagas/{a}/events"),
        3 => format!("/v1/sagas/{a}/{b}"),
        4 => format!("/v1/definitions/{a}/{b}"),
        5 => "/v1/definitions/validate".to_string(),
        6 => "/v1/overview".to_string(),
        7 => "/v1/definitions".to_string(),
        _ => format!("/{a}/{b}"),
    })
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_.=&%0-9A-F:+-]{0,40}".prop_map(|q| format!("?{q}")),
        prop_oneof![
            Just("?version=true"),
            Just("?as_of_sequence=0"),
            Just("?as_of=yesterday"),
            Just("?limit=100000&cursor=%FF"),
            Just("?status=running,nope&input.=x"),
            Just("?as_of_sequence=18446744073709551615"),
        ]
        .prop_map(str::to_string),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(br#"{"customer_id":"c-1","amount":500}"#.to_vec()),
        Just(br#"{"by":"ops","reason":"why"}"#.to_vec()),
        Just(b"[saga]\nname = \"x\"\nversion = 1\n".to_vec()),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (
            valid,
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)
        )
            .prop_map(|(mut bytes, edits)| {
                for (at, b) in edits {
                    let at = at % bytes.len();
                    bytes[at] = b;
                }
                bytes
            }),
    ]
}

#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    uri: String,
    content_type: Option<&'static str>,
    key: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("DELETE"),
            Just("PUT"),
            Just("PATCH")
        ],
        path(),
        query(),
        prop_oneof![
            Just(None),
            Just(Some("application/json")),
            Just(Some("text/plain")),
            Just(Some("application/json; charset=latin1")),
        ],
        prop::option::of(prop::collection::vec(32u8..127, 0..300)),
        body(),
    )
        .prop_map(|(method, path, query, content_type, key, body)| Call {
            method,
            uri: format!("{path}{query}"),
            content_type,
            key,
            body,
        })
}

fn orchestrator() -> Orchestrator<MemoryStore, MemoryTransport> {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    Orchestrator::new(
        MemoryStore::new(),
        MemoryTransport::new(SystemClock),
        registry,
        Options::default(),
    )
}

proptest! {
    #[test]
    fn any_request_is_answered_in_time_and_never_with_a_server_error(calls in prop::collection::vec(call(), 1..6)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let o = orchestrator();
        for call in calls {
            let mut request = Request::builder().method(call.method).uri(&call.uri);
            if let Some(content_type) = call.content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(key) = &call.key {
                request = request.header("idempotency-key", key.as_slice());
            }
            // A URI the HTTP layer itself cannot hold never reaches the API.
            let Ok(request) = request.body(Body::from(call.body.clone())) else {
                continue;
            };
            let app = saga_orchestrator::api::router(o.clone());
            let answered = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), app.oneshot(request)).await
            });
            let response = answered
                .unwrap_or_else(|_| panic!("no answer within 10 s to {call:?}"))
                .unwrap();
            prop_assert!(
                response.status().as_u16() < 500,
                "{} to {call:?}", response.status()
            );
        }
    }
}
