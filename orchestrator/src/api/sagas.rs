//! The routes of one saga: start, status (with time travel), history, operator actions (see
//! the table in [`super`]).

use super::search::parse_time;
use super::views::{EventView, SagaView, StartedView};
use super::{Caller, Error, Problem};
use crate::runtime::{Handled, Loaded, Orchestrator, Refusal};
use crate::store::EventStore;
use crate::transport::Transport;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use saga_core::{OperatorAction, OperatorCommand};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct StartQuery {
    /// The definition version to run; the newest when absent.
    version: Option<u32>,
}

#[utoipa::path(post, path = "/v1/sagas/{name}", tag = "sagas",
    params(("name" = String, Path, description = "Saga definition name"),
           ("version" = Option<u32>, Query, description = "Definition version (default: newest)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Same key and input: the same saga")),
    request_body(content = Object, description = "The saga input", content_type = "application/json"),
    responses((status = 201, description = "The saga was started", body = StartedView), (status = 200, description = "Started before under this Idempotency-Key", body = StartedView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json"), (status = 409, description = "Conflict; `detail` says why", body = Problem, content_type = "application/problem+json"), (status = 413, description = "The body is larger than the API accepts (--api-max-body)", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn start<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<StartedView>), Error> {
    let Json(input) = body.map_err(|e| {
        Error::from_body(
            &e,
            "the body must be the saga input as a JSON object with Content-Type: application/json",
        )
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
            links: super::views::Links::of(started.saga_id),
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
pub(super) struct AsOfQuery {
    /// The state after the event with this sequence (1 is the first).
    as_of_sequence: Option<u64>,
    /// The state after the last event the orchestrator had recorded at this time (RFC 3339).
    as_of: Option<String>,
}

#[utoipa::path(get, path = "/v1/sagas/{id}", tag = "sagas",
    params(("id" = Uuid, Path),
           ("as_of_sequence" = Option<u64>, Query, description = "Time travel: the saga after this event"),
           ("as_of" = Option<String>, Query, description = "Time travel: the saga as recorded at this RFC 3339 time")),
    responses((status = 200, description = "The saga: status, reason, input, steps", body = SagaView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn status<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
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
    let loaded = o.read(saga_id).await?;
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
fn saga_view<S: EventStore, T: Transport>(o: &Orchestrator<S, T>, loaded: Loaded) -> SagaView {
    let overdue = o.is_overdue(
        loaded.state.status.as_str(),
        loaded.state.deadline_at,
        loaded.record.created_at,
        o.now(),
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
    params(("id" = Uuid, Path)), responses((status = 200, description = "The saga's event log, oldest first", body = Vec<EventView>), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn history<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>, Error> {
    let saga_id = parse_id(&id)?;
    // The log as stored, each event read through the upcasters on its own: an event this
    // build cannot read (a newer build's) is shown as stored, so the history stays viewable.
    // An archived saga's log is read from the archive.
    let events = o
        .stored_log(saga_id)
        .await?
        .ok_or(crate::runtime::Declined::NotFound(saga_id))?;
    Ok(Json(events.into_iter().map(Into::into).collect()))
}

/// Body of an operator action: why, and who does it (both recorded in the saga's history).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorBody {
    /// Who acts, when the API authenticates no one. With API tokens the caller's name is
    /// recorded instead, and this is ignored.
    #[serde(default)]
    by: Option<String>,
    reason: String,
}

#[utoipa::path(post, path = "/v1/sagas/{id}/{action}", tag = "operator",
    params(("id" = Uuid, Path), ("action" = String, Path, description = "retry or skip a stuck saga, abort a stuck saga, or cancel a running one before its pivot")),
    request_body = OperatorBody,
    responses((status = 200, description = "The action was recorded; the saga as it is now", body = SagaView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga or definition", body = Problem, content_type = "application/problem+json"), (status = 409, description = "The saga's state does not allow it (it is archived, say); `detail` says why", body = Problem, content_type = "application/problem+json"), (status = 413, description = "The body is larger than the API accepts (--api-max-body)", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn operate<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    caller: Option<Extension<Caller>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<OperatorBody>, JsonRejection>,
) -> Result<Json<SagaView>, Error> {
    let saga_id = parse_id(&id)?;
    let command = match action.as_str() {
        "retry" => OperatorCommand::Retry,
        "skip" => OperatorCommand::Skip,
        "abort" => OperatorCommand::Abort,
        "cancel" => OperatorCommand::Cancel,
        other => {
            return Err(Error::NotFound(format!(
                "no operator action `{other}`: use retry, skip, abort or cancel"
            )));
        }
    };
    let Json(body) = body.map_err(|e| {
        Error::from_body(
            &e,
            r#"the body must be JSON {"reason": "why", "by": "who"}"#,
        )
    })?;
    // The authenticated caller is who acts; only an API without tokens takes the body's word.
    let by = match caller {
        Some(Extension(caller)) => {
            saga_core::Operator::with_role(caller.name, caller.role.to_string())
        }
        None => saga_core::Operator::from(body.by.unwrap_or_default()),
    };
    if by.name.trim().is_empty() || body.reason.trim().is_empty() {
        return Err(Error::BadRequest(
            "`by` and `reason` must not be empty: they are recorded in the saga's history".into(),
        ));
    }
    let action = OperatorAction {
        command,
        by,
        reason: body.reason,
    };
    match o.operate(saga_id, action).await? {
        Handled::Refused(Refusal::UnknownSaga(_)) => Err(not_in_flight(&o, saga_id).await),
        Handled::Refused(reason) => Err(Error::Conflict(reason.to_string())),
        Handled::Applied | Handled::Unchanged => Ok(Json(saga_view(&o, o.load(saga_id).await?))),
    }
}

/// Why nothing can be done to a saga the runtime does not hold: it is archived (final, so
/// 409), or there is no such saga (404).
async fn not_in_flight<S: EventStore, T: Transport>(
    o: &Orchestrator<S, T>,
    saga_id: Uuid,
) -> Error {
    match o.read(saga_id).await {
        Ok(Loaded {
            archived_at: Some(at),
            state,
            ..
        }) => Error::Conflict(format!(
            "saga {saga_id} is {} and was archived at {at}: an archived saga is final, nothing \
             more can be done to it",
            state.status.as_str()
        )),
        Ok(_) => Error::NotFound(format!("saga {saga_id} not found")),
        Err(e) => Error::from(e),
    }
}

/// The answer to a signal: whether a step took it, or why it was recorded and ignored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SignalView {
    pub signal: String,
    /// True when the step awaiting it took it; false when it was recorded and ignored.
    pub accepted: bool,
    /// Why it was ignored (the step had it already, or stopped waiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub saga: SagaView,
}

#[utoipa::path(post, path = "/v1/sagas/{id}/signals/{name}", tag = "sagas",
    params(("id" = Uuid, Path), ("name" = String, Path, description = "the signal an await step of the saga's definition waits for")),
    request_body(content = Object, description = "The signal's payload: a JSON object with the fields the definition's [step.signal] declares"),
    responses((status = 200, description = "The signal was taken, or recorded and ignored (`accepted`)", body = SignalView), (status = 400, description = "The payload does not fit the signal's fields; `detail` names the field", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json"), (status = 403, description = "The caller's role may not do this; `detail` names the role needed", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such saga, or no step of it awaits that signal", body = Problem, content_type = "application/problem+json"), (status = 409, description = "The step that awaits it has not begun waiting yet, or the saga is archived; `detail` says so", body = Problem, content_type = "application/problem+json"), (status = 413, description = "The body is larger than the API accepts (--api-max-body)", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn signal<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Path((id, name)): Path<(String, String)>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<SignalView>, Error> {
    let saga_id = parse_id(&id)?;
    let Json(payload) = body.map_err(|e| {
        Error::from_body(
            &e,
            r#"the body must be the signal's payload, a JSON object such as {"approved_by": "maria"}"#,
        )
    })?;
    match o.signal(saga_id, &name, payload).await? {
        Handled::Refused(Refusal::UnknownSaga(_)) => Err(not_in_flight(&o, saga_id).await),
        Handled::Refused(Refusal::Rejected(r @ saga_core::Rejection::UnknownSignal(_))) => {
            Err(Error::NotFound(r.to_string()))
        }
        Handled::Refused(Refusal::Rejected(r @ saga_core::Rejection::InvalidSignal(_))) => {
            Err(Error::BadRequest(r.to_string()))
        }
        Handled::Refused(reason) => Err(Error::Conflict(reason.to_string())),
        Handled::Applied | Handled::Unchanged => {
            let loaded = o.load(saga_id).await?;
            let ignored = loaded.events.last().and_then(|e| {
                (e.event_type == "SignalIgnored")
                    .then(|| e.payload["reason"].as_str().unwrap_or_default().to_string())
            });
            Ok(Json(SignalView {
                signal: name,
                accepted: ignored.is_none(),
                ignored,
                saga: saga_view(&o, loaded),
            }))
        }
    }
}
