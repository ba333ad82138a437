//! `/readyz`: whether this orchestrator can take work, for Kubernetes readiness probes.
//!
//! Ready means the event store answers, NATS is connected, the reply consumer is pulling
//! (before it is set up, and while its pull requests are being replaced after NATS came back,
//! no reply reaches this replica), and at least one saga definition is loaded (an
//! orchestrator without definitions can only refuse every start). The body names each check,
//! so a failing probe says which dependency is down:
//! `{"status":"not ready","checks":{"database":"ok","definitions":"1 loaded","nats":"disconnected","reply_consumer_pulling":"not pulling"}}`.
//! A failed check says what failed in a word or two; the driver's error text is logged, not
//! put in the body.
//!
//! `/livez` stays a constant answer on purpose: a dependency outage must take the pod out of
//! the Service, not restart it.

use crate::runtime::Orchestrator;
use crate::store::EventStore;
use crate::transport::Transport;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the database check may take; below the probe's timeout, so a hung database gives
/// a 503 that names it rather than a probe timeout that says nothing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub(super) struct Report {
    status: &'static str,
    checks: BTreeMap<&'static str, String>,
}

pub(super) async fn ready<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
) -> (StatusCode, Json<Report>) {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, o.store().list(1)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            // The driver's text (hosts, users) goes to the log, not to whoever can probe.
            tracing::warn!(error = %e, "readiness: the event store is unreachable");
            Err("unreachable".to_string())
        }
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    let nats = o.transport().connected();
    let loaded = o.registry().names().count();
    let definitions = if loaded == 0 {
        Err("none loaded".to_string())
    } else {
        Ok(format!("{loaded} loaded"))
    };
    let pulling = if o.replies_pulling() {
        Ok(())
    } else {
        Err("not pulling".to_string())
    };
    let ready = database.is_ok() && nats.is_ok() && definitions.is_ok() && pulling.is_ok();
    let checks = BTreeMap::from([
        ("database", database.map(|()| "ok".to_string())),
        ("nats", nats.map(|()| "ok".to_string())),
        ("definitions", definitions),
        ("reply_consumer_pulling", pulling.map(|()| "ok".to_string())),
    ])
    .into_iter()
    .map(|(name, r)| (name, r.unwrap_or_else(|e| e)))
    .collect();
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    (
        status,
        Json(Report {
            status: word,
            checks,
        }),
    )
}
