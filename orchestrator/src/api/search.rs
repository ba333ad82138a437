//! The routes over many sagas: search (`GET /v1/sagas`, read from the read model and its
//! indexes, never the event log) and the overview (counts by status, starts per minute).

use super::views::{ListView, OverviewView, SummaryView};
use super::{Error, Problem};
use crate::runtime::Orchestrator;
use crate::store::{Cursor, EventStore, SagaQuery};
use crate::transport::Transport;
use axum::Json;
use axum::extract::{Query, State};
use saga_protocol::Timestamp;
use std::collections::HashMap;

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
pub(super) fn parse_time(param: &str, value: &str) -> Result<Timestamp, Error> {
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
    responses((status = 200, description = "A page of sagas, newest first", body = ListView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ListView>, Error> {
    let mut query = parse_search(&params)?;
    let now = o.now();
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
    responses((status = 200, description = "Counts by status and sagas started per minute", body = OverviewView), (status = 401, description = "A token is required and was missing or wrong", body = Problem, content_type = "application/problem+json")))]
pub(super) async fn overview<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
) -> Result<Json<OverviewView>, Error> {
    let counts = o
        .store()
        .status_counts()
        .await
        .map_err(crate::runtime::Error::from)?;
    let now = o.now();
    let bucket = std::time::Duration::from_secs(BUCKET_SECONDS);
    // The last bucket ends now: the first starts BUCKETS buckets ago.
    let span = i64::try_from(BUCKETS * BUCKET_SECONDS * 1000).unwrap_or(i64::MAX);
    let since = Timestamp(now.millis().saturating_add(1).saturating_sub(span));
    let started = o
        .store()
        .started_per_bucket(since, bucket, BUCKETS as usize)
        .await
        .map_err(crate::runtime::Error::from)?;
    Ok(Json(OverviewView {
        total: counts.values().sum(),
        counts,
        bucket_seconds: BUCKET_SECONDS,
        started,
    }))
}
