//! The HTTP API (axum), versioned under `/v1`.
//!
//! | method | path                      | what                                              |
//! |--------|---------------------------|---------------------------------------------------|
//! | POST   | `/v1/sagas/{name}`        | start a saga; JSON input; optional `Idempotency-Key` |
//! | GET    | `/v1/sagas`               | newest sagas (`?limit=`)                          |
//! | GET    | `/v1/sagas/{id}`          | status and steps                                  |
//! | GET    | `/v1/sagas/{id}/events`   | the event log, with both clocks                   |
//! | POST   | `/v1/sagas/{id}/retry`    | operator: send the stuck command again            |
//! | POST   | `/v1/sagas/{id}/skip`     | operator: resolve the stuck command by hand       |
//! | POST   | `/v1/sagas/{id}/abort`    | operator: stop the saga                           |
//! | GET    | `/v1/definitions`         | loaded saga definitions, every version            |
//! | POST   | `/v1/definitions/reload`  | load new versions from the definitions directory  |
//! | POST   | `/v1/definitions/validate`| check a posted TOML definition                    |
//! | GET    | `/livez`, `/readyz`       | liveness and readiness                            |
//! | GET    | `/metrics`                | Prometheus text (sagas, steps, latency, lag, DLQ) |
//!
//! ```no_run
//! # async fn demo(orchestrator: saga_orchestrator::runtime::Orchestrator) {
//! let app = saga_orchestrator::api::router(orchestrator);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

mod error;
mod health;
mod views;

pub use error::Error;
pub use views::{EventView, SagaView, StartedView, SummaryView};

use crate::runtime::{Handled, Orchestrator, Refusal};
use crate::store::EventStore;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use saga_core::{OperatorAction, OperatorCommand};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// The API's routes over `orchestrator`.
pub fn router<S: EventStore>(orchestrator: Orchestrator<S>) -> Router {
    Router::new()
        .route("/v1/sagas", get(list::<S>))
        .route("/v1/sagas/{name}", post(start::<S>).get(status::<S>))
        .route("/v1/sagas/{id}/events", get(history::<S>))
        .route("/v1/sagas/{id}/{action}", post(operate::<S>))
        .route("/v1/definitions", get(definitions::<S>))
        .route("/v1/definitions/reload", post(reload::<S>))
        .route("/v1/definitions/validate", post(validate::<S>))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(health::ready::<S>))
        .route("/metrics", get(metrics::<S>))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1024))
        .with_state(orchestrator)
}

#[derive(Deserialize)]
struct StartQuery {
    /// The definition version to run; the newest when absent.
    version: Option<u32>,
}

async fn start<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<StartedView>), Error> {
    let Json(input) = body.map_err(|e| {
        Error::BadRequest(format!(
            "the body must be the saga input as a JSON object with Content-Type: application/json ({})",
            e.body_text()
        ))
    })?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Error::BadRequest(
                        "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                    )
                })?
                .to_string(),
        ),
    };
    let started = o.start_version(&name, q.version, input, key).await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(StartedView {
            saga_id: started.saga_id,
            created: started.created,
            links: views::Links::of(started.saga_id),
        }),
    ))
}

fn parse_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| {
        Error::BadRequest(format!(
            "`{raw}` is not a saga id (a UUID such as 2f1c0e6a-…)"
        ))
    })
}

async fn status<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(id): Path<String>,
) -> Result<Json<SagaView>, Error> {
    let loaded = o.load(parse_id(&id)?).await?;
    Ok(Json(loaded.into()))
}

async fn history<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, Error> {
    let loaded = o.load(parse_id(&id)?).await?;
    Ok(Json(loaded.events.into_iter().map(Into::into).collect()))
}

/// Body of an operator action: who does it and why (both recorded in the saga's history).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    by: String,
    reason: String,
}

async fn operate<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<OperatorBody>, JsonRejection>,
) -> Result<Json<SagaView>, Error> {
    let saga_id = parse_id(&id)?;
    let command = match action.as_str() {
        "retry" => OperatorCommand::Retry,
        "skip" => OperatorCommand::Skip,
        "abort" => OperatorCommand::Abort,
        other => {
            return Err(Error::NotFound(format!(
                "no operator action `{other}`: use retry, skip or abort"
            )));
        }
    };
    let Json(body) = body.map_err(|e| {
        Error::BadRequest(format!(
            "the body must be JSON {{\"by\": \"who\", \"reason\": \"why\"}} ({})",
            e.body_text()
        ))
    })?;
    if body.by.trim().is_empty() || body.reason.trim().is_empty() {
        return Err(Error::BadRequest(
            "`by` and `reason` must not be empty: they are recorded in the saga's history".into(),
        ));
    }
    let action = OperatorAction {
        command,
        by: body.by,
        reason: body.reason,
    };
    match o.operate(saga_id, action).await? {
        Handled::Refused(Refusal::UnknownSaga(_)) => {
            Err(Error::NotFound(format!("saga {saga_id} not found")))
        }
        Handled::Refused(reason) => Err(Error::Conflict(reason.to_string())),
        Handled::Applied | Handled::Unchanged => Ok(Json(o.load(saga_id).await?.into())),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<SummaryView>>, Error> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let records = o
        .store()
        .list(limit)
        .await
        .map_err(crate::runtime::Error::from)?;
    Ok(Json(records.into_iter().map(Into::into).collect()))
}

#[derive(serde::Serialize)]
struct DefinitionView {
    name: String,
    version: u32,
    description: String,
    steps: Vec<String>,
}

fn definition_views(registry: &crate::runtime::Registry) -> Vec<DefinitionView> {
    registry
        .definitions()
        .map(|d| DefinitionView {
            name: d.name.clone(),
            version: d.version,
            description: d.description.clone(),
            steps: d.steps.iter().map(|s| s.name.clone()).collect(),
        })
        .collect()
}

async fn definitions<S: EventStore>(State(o): State<Orchestrator<S>>) -> Json<Vec<DefinitionView>> {
    Json(definition_views(&o.registry()))
}

/// Loads the definitions directory again: new versions are added, running sagas keep theirs.
async fn reload<S: EventStore>(
    State(o): State<Orchestrator<S>>,
) -> Result<Json<Vec<DefinitionView>>, Error> {
    let registry = o
        .reload()
        .map_err(|e| Error::BadRequest(format!("the definitions were not reloaded:\n{e}")))?;
    Ok(Json(definition_views(&registry)))
}

/// Validates a posted definition (TOML body) against the loaded catalogue.
async fn validate<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    body: String,
) -> Result<Json<DefinitionView>, Error> {
    let registry = o.registry();
    let def = saga_core::Definition::parse("posted.toml", &body, registry.catalogue())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(Json(DefinitionView {
        name: def.name.clone(),
        version: def.version,
        description: def.description.clone(),
        steps: def.steps.iter().map(|s| s.name.clone()).collect(),
    }))
}

/// Every metric of this process, after sampling the gauges that are read, not counted.
async fn metrics<S: EventStore>(State(o): State<Orchestrator<S>>) -> impl IntoResponse {
    // A slow database or NATS must not hang the scrape: the gauges keep their last values.
    let _ = tokio::time::timeout(Duration::from_secs(2), o.sample_gauges()).await;
    (
        [(CONTENT_TYPE, saga_telemetry::metrics::CONTENT_TYPE)],
        saga_telemetry::metrics::render(),
    )
}
