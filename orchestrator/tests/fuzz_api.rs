//! Fuzzing the HTTP API's request extractors (proptest): random methods on the API's route
//! shapes with random path segments (percent-encoded, invalid UTF-8 escapes among them),
//! query strings, headers and bodies (random bytes, and valid inputs with random edits), sent
//! through the router to an orchestrator over the in-memory store and transport. Every
//! request is answered within a deadline and never with a server error: bad input is the
//! caller's (4xx), never a panic or a hang. And driven by the OpenAPI document the server
//! serves: every documented operation, with real and random path parameters and bodies
//! (schema-valid inputs generated from each saga's input schema among them), answers only
//! statuses and content types its operation documents, and takes every schema-valid start.
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

/// One operation of the OpenAPI document: its method, path template, the saga input its body
/// is (by its component name, `Input.<saga>`), and the statuses and content types it answers.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    input: Option<String>,
    answers: Vec<(u16, Vec<String>)>,
}

/// Every operation of `doc`.
fn operations(doc: &serde_json::Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let input = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .filter(|name| name.starts_with("Input."))
                .map(str::to_string);
            let answers = op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(code, r)| {
                    let types = r["content"]
                        .as_object()
                        .map(|c| c.keys().cloned().collect())
                        .unwrap_or_default();
                    (code.parse().unwrap(), types)
                })
                .collect();
            ops.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                input,
                answers,
            });
        }
    }
    ops
}

/// A value that keeps `schema` (the subset the input schemas use), chosen by `seed`.
fn valid_value(schema: &serde_json::Value, seed: u64) -> serde_json::Value {
    use serde_json::json;
    if let Some(allowed) = schema["enum"].as_array() {
        return allowed[(seed as usize) % allowed.len()].clone();
    }
    match schema["type"].as_str() {
        Some("integer") => {
            let min = schema["minimum"].as_i64().unwrap_or(0);
            let max = schema["maximum"].as_i64().unwrap_or(min + 1_000_000);
            json!(min + (seed as i64).rem_euclid(max - min + 1))
        }
        Some("boolean") => json!(seed.is_multiple_of(2)),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ if schema["format"] == "uuid" => json!("5b1f8e8e-0000-4000-8000-000000000001"),
        _ if schema["pattern"].is_string() => json!("12.50"),
        _ => {
            let min = schema["minLength"].as_u64().unwrap_or(1).max(1) as usize;
            json!(
                format!("c-{seed}")
                    .chars()
                    .cycle()
                    .take(min.max(3))
                    .collect::<String>()
            )
        }
    }
}

/// A saga input that keeps the component schema `name` of `doc`.
fn valid_input(doc: &serde_json::Value, name: &str, seed: u64) -> serde_json::Value {
    let schema = &doc["components"]["schemas"][name];
    let mut input = serde_json::Map::new();
    for (field, property) in schema["properties"].as_object().unwrap() {
        input.insert(field.clone(), valid_value(property, seed));
    }
    serde_json::Value::Object(input)
}

/// The OpenAPI document this orchestrator serves.
fn document(
    runtime: &tokio::runtime::Runtime,
    o: &Orchestrator<MemoryStore, MemoryTransport>,
) -> serde_json::Value {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = runtime
        .block_on(saga_orchestrator::api::router(o.clone()).oneshot(request))
        .unwrap();
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), 1 << 22))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

proptest! {
    #[test]
    fn every_operation_of_the_document_answers_only_as_it_says(
        picks in prop::collection::vec((any::<prop::sample::Index>(), segment(), any::<u64>(), any::<bool>(), body()), 1..8),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let o = orchestrator();
        let doc = document(&runtime, &o);
        let ops = operations(&doc);
        prop_assert!(ops.len() >= 12, "{} operations", ops.len());
        // A saga that exists, for the operations on one.
        let existing = runtime
            .block_on(o.start("place_order", serde_json::json!({"customer_id": "c-1", "amount": 5}), None))
            .unwrap()
            .saga_id
            .to_string();
        for (pick, segment, seed, valid, random_body) in picks {
            let op = pick.get(&ops);
            let mut uri = op.path.clone();
            for (param, real) in [
                ("{id}", existing.as_str()),
                ("{name}", if op.path.starts_with("/v1/definitions") { "place_order" } else { "approval" }),
                ("{action}", ["retry", "skip", "abort", "cancel"][(seed % 4) as usize]),
                ("{version}", "1"),
            ] {
                let value = if valid { real.to_string() } else { segment.clone() };
                uri = uri.replace(param, &value);
            }
            let body = match &op.input {
                Some(schema) if valid => valid_input(&doc, schema, seed).to_string().into_bytes(),
                _ if valid && op.method == "POST" => br#"{"by":"ops","reason":"why","approved_by":"maria"}"#.to_vec(),
                _ => random_body,
            };
            let request = Request::builder()
                .method(op.method.as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from(body.clone()));
            let Ok(request) = request else { continue };
            let response = runtime
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        saga_orchestrator::api::router(o.clone()).oneshot(request),
                    )
                    .await
                })
                .unwrap_or_else(|_| panic!("no answer within 10 s to {} {uri}", op.method))
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            prop_assert!(status < 500, "{status} to {} {uri}", op.method);
            let documented = op.answers.iter().find(|(code, _)| *code == status);
            prop_assert!(
                documented.is_some(),
                "{} {} answered {status}, which {} {} does not document ({:?}); body {:?}",
                op.method, uri, op.method, op.path, op.answers.iter().map(|a| a.0).collect::<Vec<_>>(),
                String::from_utf8_lossy(&body)
            );
            if let Some((_, types)) = documented
                && !types.is_empty()
            {
                prop_assert!(
                    types.iter().any(|t| content_type.starts_with(t.as_str())),
                    "{} {uri} answered {status} as {content_type}, documented {types:?}", op.method
                );
            }
            // A start with an input that keeps its saga's schema is taken.
            if op.input.is_some() && valid {
                prop_assert!(status == 201, "{} {uri} refused a schema-valid input: {status}", op.method);
            }
        }
    }
}
