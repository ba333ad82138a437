//! The HTTP API through the router (no socket), over a real nats-server and the in-memory
//! store, plus one test over a real socket. By concern: starting, reading and searching sagas
//! (`sagas`), acting on them (`control`), who may call (`callers`), the published contract
//! (`contract`), the stored definitions (`definitions`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod callers;
mod contract;
mod control;
mod definitions;
mod sagas;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use saga_orchestrator::api::{Role, Tokens, authenticate};
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::MemoryStore;
use saga_orchestrator::transport::JetStream;
use saga_testkit::NatsServer;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

async fn orchestrator(nats: &NatsServer) -> Orchestrator<MemoryStore> {
    orchestrator_with(nats, Options::default()).await
}

/// An orchestrator of the repository's definitions with `options`, on the in-memory store.
async fn orchestrator_with(nats: &NatsServer, options: Options) -> Orchestrator<MemoryStore> {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let transport = JetStream::connect(
        &nats.url(),
        1,
        &nats.identities().credentials("orchestrator").unwrap(),
    )
    .await
    .unwrap();
    Orchestrator::new(MemoryStore::new(), transport, registry, options)
}

async fn call(o: &Orchestrator<MemoryStore>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = saga_orchestrator::api::router(o.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Plays every participant: answers each command of saga `id` with success until it ends.
async fn complete(o: &Orchestrator<MemoryStore>, id: uuid::Uuid) {
    play(o, id, 10).await;
    assert_eq!(o.load(id).await.unwrap().state.status.as_str(), "completed");
}

/// Plays every participant for up to `rounds` rounds: each round answers every command of
/// saga `id` in flight with success.
async fn play(o: &Orchestrator<MemoryStore>, id: uuid::Uuid, rounds: usize) {
    for _ in 0..rounds {
        let loaded = o.load(id).await.unwrap();
        let commands: Vec<_> = loaded.state.in_flight().cloned().collect();
        if commands.is_empty() {
            break;
        }
        for command in &commands {
            let output = json!({"reserved": 500, "order_id": "o-1"});
            let reply = saga_protocol::ReplyEnvelope::answering(
                command,
                saga_protocol::Outcome::Succeeded { output },
                saga_protocol::Timestamp::now(),
            );
            o.handle_reply(&reply).await.unwrap();
        }
    }
}

fn delete(path: &str) -> Request<Body> {
    Request::delete(path).body(Body::empty()).unwrap()
}

/// The listed version `version` of saga `name`.
fn listed<'a>(list: &'a Value, name: &str, version: u32) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name && d["version"] == version)
        .unwrap_or_else(|| panic!("{name} v{version} not in {list}"))
}
