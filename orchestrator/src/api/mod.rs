//! The HTTP API (axum), versioned under `/v1`.
//!
//! | method | path                      | what                                              |
//! |--------|---------------------------|---------------------------------------------------|
//! | POST   | `/v1/sagas/{name}`        | start a saga; JSON input; optional `Idempotency-Key` |
//! | GET    | `/v1/sagas`               | newest sagas (`?limit=`)                          |
//! | GET    | `/v1/sagas/{id}`          | status and steps                                  |
//! | GET    | `/v1/sagas/{id}/events`   | the event log, with both clocks                   |
//! | GET    | `/v1/definitions`         | loaded saga definitions                           |
//! | GET    | `/livez`, `/readyz`       | liveness and readiness                            |
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

use crate::runtime::Orchestrator;
use crate::store::EventStore;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

/// The API's routes over `orchestrator`.
pub fn router<S: EventStore>(orchestrator: Orchestrator<S>) -> Router {
    Router::new()
        .route("/v1/sagas", get(list::<S>))
        .route("/v1/sagas/{name}", post(start::<S>).get(status::<S>))
        .route("/v1/sagas/{id}/events", get(history::<S>))
        .route("/v1/definitions", get(definitions::<S>))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(health::ready::<S>))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1024))
        .with_state(orchestrator)
}

async fn start<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(name): Path<String>,
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
    let started = o.start(&name, input, key).await?;
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

async fn definitions<S: EventStore>(State(o): State<Orchestrator<S>>) -> Json<Vec<DefinitionView>> {
    let defs = o
        .registry()
        .names()
        .filter_map(|n| o.registry().get(n))
        .map(|d| DefinitionView {
            name: d.name.clone(),
            version: d.version,
            description: d.description.clone(),
            steps: d.steps.iter().map(|s| s.name.clone()).collect(),
        })
        .collect();
    Json(defs)
}
