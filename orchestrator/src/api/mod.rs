//! The HTTP API (axum), versioned under `/v1`.
//!
//! | method | path                      | what                                              |
//! |--------|---------------------------|---------------------------------------------------|
//! | POST   | `/v1/sagas/{name}`        | start a saga; JSON input; optional `Idempotency-Key` |
//! | GET    | `/v1/sagas`               | search, newest first, cursor paging (see below)   |
//! | GET    | `/v1/sagas/{id}`          | status and steps; `?as_of_sequence=N`, `?as_of=T` |
//! | GET    | `/v1/overview`            | counts by status, sagas started per minute        |
//! | GET    | `/v1/sagas/{id}/events`   | the event log, with both clocks                   |
//! | POST   | `/v1/sagas/{id}/retry`    | operator: send the stuck command again            |
//! | POST   | `/v1/sagas/{id}/skip`     | operator: resolve the stuck command by hand       |
//! | POST   | `/v1/sagas/{id}/abort`    | operator: stop the saga                           |
//! | GET    | `/v1/definitions`         | stored definition versions: hash, loaded, in flight |
//! | POST   | `/v1/definitions/reload`  | load new versions from the definitions directory  |
//! | POST   | `/v1/definitions/validate`| check a posted TOML definition                    |
//! | DELETE | `/v1/definitions/{name}/{version}` | retire a version with no saga in flight  |
//! | GET    | `/livez`, `/readyz`       | liveness and readiness                            |
//! | GET    | `/metrics`                | Prometheus text (sagas, steps, latency, lag, DLQ) |
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
mod health;
mod openapi;
mod server;
pub mod starting;
mod ui;
mod views;

pub use auth::require_token;
pub use error::{Error, Problem};
pub use openapi::openapi;
pub use server::{ServeError, Server, serve};
pub use views::{EventView, ListView, OverviewView, SagaView, StartedView, SummaryView};

use crate::runtime::{Handled, Loaded, Orchestrator, Refusal};
use crate::store::{Cursor, EventStore, SagaQuery};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use saga_core::{OperatorAction, OperatorCommand};
use saga_protocol::Timestamp;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// The API's routes over `orchestrator`.
pub fn router<S: EventStore>(orchestrator: Orchestrator<S>) -> Router {
    Router::new()
        .route("/v1/sagas", get(list::<S>))
        .route("/v1/overview", get(overview::<S>))
        .route("/v1/sagas/{name}", post(start::<S>).get(status::<S>))
        .route("/v1/sagas/{id}/events", get(history::<S>))
        .route("/v1/sagas/{id}/{action}", post(operate::<S>))
        .route("/v1/definitions", get(definitions::list::<S>))
        .route("/v1/definitions/reload", post(definitions::reload::<S>))
        .route("/v1/definitions/validate", post(definitions::validate::<S>))
        .route(
            "/v1/definitions/{name}/{version}",
            delete(definitions::retire::<S>),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(health::ready::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .merge(ui::routes())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1024))
        .with_state(orchestrator)
}

#[derive(Deserialize)]
struct StartQuery {
    /// The definition version to run; the newest when absent.
    version: Option<u32>,
}

#[utoipa::path(post, path = "/v1/sagas/{name}", tag = "sagas",
    params(("name" = String, Path, description = "Saga definition name"),
           ("version" = Option<u32>, Query, description = "Definition version (default: newest)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Same key and input: the same saga")),
    request_body(content = Object, description = "The saga input", content_type = "application/json"),
    responses((status = 201, body = StartedView), (status = 200, description = "Started before under this Idempotency-Key", body = StartedView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict; `detail` says why", body = Problem, content_type = "application/problem+json")))]
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

/// Time travel: the state as of an event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOfQuery {
    /// The state after the event with this sequence (1 is the first).
    as_of_sequence: Option<u64>,
    /// The state after the last event the orchestrator had recorded at this time (RFC 3339).
    as_of: Option<String>,
}

#[utoipa::path(get, path = "/v1/sagas/{id}", tag = "sagas",
    params(("id" = Uuid, Path),
           ("as_of_sequence" = Option<u64>, Query, description = "Time travel: the saga after this event"),
           ("as_of" = Option<String>, Query, description = "Time travel: the saga as recorded at this RFC 3339 time")),
    responses((status = 200, body = SagaView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json")))]
async fn status<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(id): Path<String>,
    query: Result<Query<AsOfQuery>, QueryRejection>,
) -> Result<Json<SagaView>, Error> {
    let Query(q) = query.map_err(|e| {
        Error::BadRequest(format!(
            "use `as_of_sequence=<event sequence>` or `as_of=<RFC 3339 time>` ({})",
            e.body_text()
        ))
    })?;
    let saga_id = parse_id(&id)?;
    let loaded = o.load(saga_id).await?;
    let keep = match (q.as_of_sequence, q.as_of.as_deref()) {
        (None, None) => return Ok(Json(saga_view(&o, loaded))),
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest(
                "give either `as_of_sequence` or `as_of`, not both".into(),
            ));
        }
        (Some(0), None) => {
            return Err(Error::BadRequest(
                "`as_of_sequence` starts at 1, the saga's first event".into(),
            ));
        }
        (Some(sequence), None) => {
            if sequence > loaded.record.version {
                return Err(Error::NotFound(format!(
                    "saga {saga_id} has {} events; `as_of_sequence` must be 1 to {}",
                    loaded.record.version, loaded.record.version
                )));
            }
            usize::try_from(sequence).unwrap_or(usize::MAX)
        }
        (None, Some(time)) => {
            let at = parse_time("as_of", time)?;
            let keep = loaded
                .events
                .iter()
                .take_while(|e| e.recorded_at <= at)
                .count();
            if keep == 0 {
                return Err(Error::NotFound(format!(
                    "saga {saga_id} did not exist yet at {time}; it was created at {}",
                    loaded.record.created_at
                )));
            }
            keep
        }
    };
    Ok(Json(as_of(loaded, keep)?.into()))
}

/// A saga as the API shows it now, flagged when it is overdue.
fn saga_view<S: EventStore>(o: &Orchestrator<S>, loaded: Loaded) -> SagaView {
    let overdue = o.is_overdue(
        loaded.state.status.as_str(),
        loaded.state.deadline_at,
        loaded.record.created_at,
        Timestamp::now(),
    );
    SagaView {
        overdue,
        ..loaded.into()
    }
}

/// The saga as it was after its first `keep` events: a replay of that prefix of the log.
fn as_of(mut loaded: Loaded, keep: usize) -> Result<Loaded, Error> {
    loaded.events.truncate(keep);
    let saga_id = loaded.record.saga_id;
    let occurred = crate::runtime::decode_all(saga_id, &loaded.events)?;
    loaded.state = saga_core::SagaState::replay(saga_id, &occurred);
    if let Some(last) = loaded.events.last() {
        loaded.record.updated_at = last.recorded_at;
        loaded.record.version = last.sequence;
    }
    Ok(loaded)
}

#[utoipa::path(get, path = "/v1/sagas/{id}/events", tag = "sagas",
    params(("id" = Uuid, Path)), responses((status = 200, body = Vec<EventView>), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json")))]
async fn history<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, Error> {
    let loaded = o.load(parse_id(&id)?).await?;
    Ok(Json(loaded.events.into_iter().map(Into::into).collect()))
}

/// Body of an operator action: who does it and why (both recorded in the saga's history).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    by: String,
    reason: String,
}

#[utoipa::path(post, path = "/v1/sagas/{id}/{action}", tag = "operator",
    params(("id" = Uuid, Path), ("action" = String, Path, description = "retry, skip or abort")),
    request_body = OperatorBody,
    responses((status = 200, body = SagaView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict; `detail` says why", body = Problem, content_type = "application/problem+json")))]
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
        Handled::Applied | Handled::Unchanged => Ok(Json(saga_view(&o, o.load(saga_id).await?))),
    }
}

/// The statuses a search may name.
const STATUSES: [&str; 6] = [
    "running",
    "compensating",
    "completed",
    "compensated",
    "stuck",
    "aborted",
];

/// `GET /v1/sagas?status=a,b&name=&version=&from=&until=&input.<field>=<value>&overdue=&cursor=&limit=`
/// (`overdue=true` is applied by the handler, which knows the time and the setting)
fn parse_search(params: &HashMap<String, String>) -> Result<SagaQuery, Error> {
    let mut q = SagaQuery {
        limit: 50,
        ..SagaQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "status" => {
                for status in value.split(',').filter(|s| !s.is_empty()) {
                    let status = status.trim().to_ascii_lowercase();
                    if !STATUSES.contains(&status.as_str()) {
                        return Err(Error::BadRequest(format!(
                            "unknown status `{status}`: use one or more of {}, separated by commas",
                            STATUSES.join(", ")
                        )));
                    }
                    q.statuses.push(status);
                }
            }
            "name" if !value.is_empty() => q.name = Some(value.clone()),
            "version" if !value.is_empty() => {
                q.definition_version = Some(value.parse().map_err(|_| {
                    Error::BadRequest(format!("`version={value}` must be a whole number"))
                })?)
            }
            "from" if !value.is_empty() => q.created_from = Some(parse_time("from", value)?),
            "until" if !value.is_empty() => q.created_until = Some(parse_time("until", value)?),
            "cursor" if !value.is_empty() => q.after = Some(value.parse().map_err(|()| {
                Error::BadRequest(format!(
                    "`cursor={value}` is not a cursor: pass the `next_cursor` of the previous page"
                ))
            })?),
            "limit" => {
                let limit: u32 = value.parse().map_err(|_| {
                    Error::BadRequest(format!("`limit={value}` must be a number from 1 to 1000"))
                })?;
                q.limit = limit.clamp(1, 1000);
            }
            "overdue" if value == "true" || value == "false" => {}
            "overdue" => {
                return Err(Error::BadRequest(format!(
                    "`overdue={value}` must be true or false"
                )));
            }
            "name" | "version" | "from" | "until" | "cursor" => {}
            other => match other.strip_prefix("input.") {
                Some(field) if !field.is_empty() => {
                    if q.tag.is_some() {
                        return Err(Error::BadRequest(
                            "search by one input field at a time (one `input.<field>=` parameter)"
                                .into(),
                        ));
                    }
                    q.tag = Some((field.to_string(), value.clone()));
                }
                _ => {
                    return Err(Error::BadRequest(format!(
                        "unknown parameter `{other}`: use status, name, version, from, until, \
                         input.<field>, overdue, cursor or limit"
                    )));
                }
            },
        }
    }
    Ok(q)
}

/// An RFC 3339 UTC time such as `2026-11-23T18:00:00Z`.
fn parse_time(param: &str, value: &str) -> Result<Timestamp, Error> {
    let t = humantime::parse_rfc3339_weak(value).map_err(|_| {
        Error::BadRequest(format!(
            "`{param}={value}` is not a time: use RFC 3339 in UTC, e.g. 2026-11-23T18:00:00Z"
        ))
    })?;
    let millis = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Ok(Timestamp(i64::try_from(millis).unwrap_or(i64::MAX)))
}

#[utoipa::path(get, path = "/v1/sagas", tag = "sagas",
    params(("status" = Option<String>, Query, description = "Statuses, comma-separated"),
           ("name" = Option<String>, Query), ("version" = Option<u32>, Query),
           ("from" = Option<String>, Query, description = "Created at or after (RFC 3339)"),
           ("until" = Option<String>, Query, description = "Created before (RFC 3339)"),
           ("input.customer_id" = Option<String>, Query, description = "Any `input.<field>`: a top-level scalar input field"),
           ("overdue" = Option<bool>, Query, description = "`true`: only sagas still running or compensating well past their deadline (or their start, without one)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<u32>, Query, description = "1 to 1000, default 50")),
    responses((status = 200, body = ListView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json")))]
async fn list<S: EventStore>(
    State(o): State<Orchestrator<S>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ListView>, Error> {
    let mut query = parse_search(&params)?;
    let now = Timestamp::now();
    if params.get("overdue").is_some_and(|v| v == "true") {
        // Overdue is a kind of active: of the statuses asked for, only the active ones.
        let active = crate::runtime::overdue_statuses();
        if query.statuses.is_empty() {
            query.statuses = active.iter().map(|s| s.to_string()).collect();
        } else {
            query.statuses.retain(|s| active.contains(&s.as_str()));
            if query.statuses.is_empty() {
                return Ok(Json(ListView {
                    sagas: Vec::new(),
                    next_cursor: None,
                }));
            }
        }
        query.overdue_before = Some(crate::runtime::overdue_before(o.options(), now));
    }
    let records = o
        .store()
        .search(&query)
        .await
        .map_err(crate::runtime::Error::from)?;
    let next_cursor = (records.len() == query.limit as usize)
        .then(|| records.last().map(|r| Cursor::after(r).to_string()))
        .flatten();
    let sagas = records
        .into_iter()
        .map(|r| SummaryView {
            overdue: o.is_overdue(&r.status, r.deadline_at, r.created_at, now),
            ..r.into()
        })
        .collect();
    Ok(Json(ListView { sagas, next_cursor }))
}

/// Throughput buckets of the overview: 30 of one minute.
const BUCKETS: u64 = 30;
const BUCKET_SECONDS: u64 = 60;

#[utoipa::path(get, path = "/v1/overview", tag = "sagas",
    responses((status = 200, body = OverviewView), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json")))]
async fn overview<S: EventStore>(
    State(o): State<Orchestrator<S>>,
) -> Result<Json<OverviewView>, Error> {
    let counts = o
        .store()
        .status_counts()
        .await
        .map_err(crate::runtime::Error::from)?;
    let now = Timestamp::now();
    let span = i64::try_from(BUCKETS * BUCKET_SECONDS * 1000).unwrap_or(i64::MAX);
    let since = Timestamp(now.millis().saturating_sub(span));
    let recent = o
        .store()
        .search(&SagaQuery {
            created_from: Some(since),
            limit: 10_000,
            ..SagaQuery::default()
        })
        .await
        .map_err(crate::runtime::Error::from)?;
    let mut started = vec![0u64; BUCKETS as usize];
    for record in recent {
        let age = now
            .millis()
            .saturating_sub(record.created_at.millis())
            .max(0) as u64;
        let back = (age / (BUCKET_SECONDS * 1000)) as usize;
        if let Some(bucket) = started.len().checked_sub(back + 1) {
            started[bucket] += 1;
        }
    }
    Ok(Json(OverviewView {
        total: counts.values().sum(),
        counts,
        bucket_seconds: BUCKET_SECONDS,
        started,
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
