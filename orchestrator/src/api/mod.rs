//! The HTTP API (axum), versioned under `/v1`.
//!
//! | method | path                      | what                                              |
//! |--------|---------------------------|---------------------------------------------------|
//! | POST   | `/v1/sagas/{name}`        | start a saga; JSON input; optional `Idempotency-Key` |
//! | GET    | `/v1/sagas`               | search, newest first, cursor paging (see below)   |
//! | GET    | `/v1/sagas/{id}`          | status and steps; `?as_of_sequence=N`, `?as_of=T` |
//! | GET    | `/v1/overview`            | counts by status, sagas started per minute        |
//! | GET    | `/v1/sagas/{id}/events`   | the event log, with both clocks                   |
//! | GET    | `/v1/events`              | every saga's events after `?after=P`, commit order |
//! | GET    | `/v1/events/stream`       | the same, live (server-sent events, `Last-Event-ID`) |
//! | POST   | `/v1/sagas/{id}/retry`    | operator: send the stuck command again            |
//! | POST   | `/v1/sagas/{id}/skip`     | operator: resolve the stuck command by hand       |
//! | POST   | `/v1/sagas/{id}/abort`    | operator: stop a stuck saga as it is              |
//! | POST   | `/v1/sagas/{id}/cancel`   | operator: undo a running saga before its pivot    |
//! | POST   | `/v1/sagas/{id}/signals/{name}` | signal an await step; JSON payload          |
//! | GET    | `/v1/definitions`         | stored definition versions: hash, loaded, in flight |
//! | POST   | `/v1/definitions/reload`  | load new versions from the definitions directory  |
//! | POST   | `/v1/definitions/validate`| check a posted TOML definition                    |
//! | DELETE | `/v1/definitions/{name}/{version}` | retire a version with no saga in flight  |
//! | GET    | `/v1/projections/sagas`   | the read model compared with the fold of the log  |
//! | POST   | `/v1/projections/sagas/rebuild` | admin: rewrite the rows that differ from it |
//! | GET    | `/livez`, `/readyz`       | liveness and readiness                            |
//! | GET    | `/metrics`                | Prometheus text (sagas, steps, latency, lag, DLQ); on its own listener with `--metrics-listen` |
//! | GET    | `/openapi.json`           | this API as an OpenAPI document (generated)       |
//! | GET    | `/`                       | the web UI (embedded HTML, script and stylesheet) |
//!
//! Search: `status=compensated,stuck`, `name=place_order`, `version=2`, `from=` / `until=`
//! (RFC 3339, on the creation time), `input.customer_id=alice` (a top-level scalar field of
//! the start input), `limit=` (1 to 1000, default 50) and `cursor=` (the previous page's
//! `next_cursor`). It reads the read model and its indexes, never the event log.
//!
//! Time travel: `GET /v1/sagas/{id}?as_of_sequence=N` is the saga replayed up to its event N;
//! `?as_of=2026-11-23T18:00:00Z` up to the last event recorded at or before that time.
//!
//! ```no_run
//! # async fn demo(orchestrator: saga_orchestrator::runtime::Orchestrator) {
//! let app = saga_orchestrator::api::router(orchestrator);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

mod auth;
mod definitions;
mod error;
mod events;
mod health;
mod limits;
mod openapi;
mod projections;
mod sagas;
mod search;
mod server;
pub mod starting;
#[cfg(test)]
mod test_support;
mod tokens;
mod ui;
mod views;

pub use auth::{authenticate, required_role};
pub use error::{Error, Problem};
pub use limits::{DEFAULT_MAX_BODY, Limits, bounded};
pub use openapi::{Authenticating, document, openapi};
pub use server::{ServeError, Server, serve};
pub use tokens::{
    Caller, Role, Tokens, TokensError, hex as hex_digits, write_entry as write_token_entry,
};
pub use views::{
    EventView, FeedEventView, FeedView, ListView, OverviewView, SagaView, StartedView, SummaryView,
};

use crate::runtime::Orchestrator;
use crate::store::EventStore;
use crate::transport::Transport;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::time::Duration;

/// The API's routes over `orchestrator`, `/metrics` among them, with the default [`Limits`].
pub fn router<S: EventStore, T: Transport>(orchestrator: Orchestrator<S, T>) -> Router {
    router_with(orchestrator, Limits::default())
}

/// The API's routes over `orchestrator`, `/metrics` among them, within `limits`.
pub fn router_with<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    limits: Limits,
) -> Router {
    limits::bounded(routes(orchestrator, true), limits)
}

/// The API's routes, with `/metrics` or without (when it has a listener of its own), before
/// [`limits::bounded`].
pub(crate) fn routes<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    with_metrics: bool,
) -> Router {
    let router = Router::new()
        .route("/v1/sagas", get(search::list::<S, T>))
        .route("/v1/overview", get(search::overview::<S, T>))
        .route(
            "/v1/sagas/{name}",
            post(sagas::start::<S, T>).get(sagas::status::<S, T>),
        )
        .route("/v1/sagas/{id}/events", get(sagas::history::<S, T>))
        .route("/v1/events", get(events::list::<S, T>))
        .route("/v1/events/stream", get(events::stream::<S, T>))
        .route("/v1/sagas/{id}/{action}", post(sagas::operate::<S, T>))
        .route("/v1/sagas/{id}/signals/{name}", post(sagas::signal::<S, T>))
        .route("/v1/definitions", get(definitions::list::<S, T>))
        .route("/v1/definitions/reload", post(definitions::reload::<S, T>))
        .route(
            "/v1/definitions/validate",
            post(definitions::validate::<S, T>),
        )
        .route(
            "/v1/definitions/{name}/{version}",
            delete(definitions::retire::<S, T>),
        )
        .route("/v1/projections/{name}", get(projections::verify::<S, T>))
        .route(
            "/v1/projections/{name}/rebuild",
            post(projections::rebuild::<S, T>),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(health::ready::<S, T>))
        .route("/openapi.json", get(openapi_json::<S, T>));
    let router = if with_metrics {
        router.route("/metrics", get(metrics::<S, T>))
    } else {
        router
    };
    router
        .merge(ui::routes())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1024))
        .with_state(orchestrator)
}

/// Every metric of this process, after sampling the gauges that are read, not counted.
async fn metrics<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
) -> impl IntoResponse {
    render_metrics(Some(&o)).await
}

/// Every metric of this process, sampling the gauges of `orchestrator` when there is one.
pub(crate) async fn render_metrics<S: EventStore, T: Transport>(
    orchestrator: Option<&Orchestrator<S, T>>,
) -> axum::response::Response {
    if let Some(o) = orchestrator {
        // A slow database or NATS must not hang the scrape: the gauges keep their last values.
        let _ = tokio::time::timeout(Duration::from_secs(2), o.sample_gauges()).await;
    }
    (
        [(CONTENT_TYPE, saga_telemetry::metrics::CONTENT_TYPE)],
        saga_telemetry::metrics::render(),
    )
        .into_response()
}

/// `GET /openapi.json`: the document as this server is configured.
async fn openapi_json<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    authenticating: Option<axum::Extension<Authenticating>>,
) -> Json<serde_json::Value> {
    let authenticated = authenticating.is_some_and(|a| a.0.0);
    Json(document(&o.registry(), authenticated))
}
