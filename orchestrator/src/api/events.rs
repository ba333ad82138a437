//! `/v1/events`: every saga's events in commit order, for subscribers that must miss nothing.
//!
//! Each event has a `position` in the feed: 1, 2, 3… in commit order, without holes, on SQLite
//! and PostgreSQL alike (see `migrations/*/0007_saga_events_position.sql`). A subscriber keeps
//! the last position it handled and asks for what comes after it: `GET /v1/events?after=P`
//! pages through the feed, and `GET /v1/events/stream` serves it live as server-sent events
//! whose `id` is the position, so a client that reconnects with `Last-Event-ID` (every
//! EventSource does) resumes exactly where it stopped, missing nothing and seeing nothing
//! twice. The stream reads the store, not one replica's memory: it carries every replica's
//! events, at most [`POLL`] after their commit.

use super::Error;
use super::views::{FeedEventView, FeedView};
use crate::runtime::{self, Orchestrator};
use crate::store::EventStore;
use crate::transport::Transport;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// Events per page at most, and the default.
const MAX_PAGE: u32 = 1_000;
const DEFAULT_PAGE: u32 = 100;
/// How long the stream waits, with nothing new, before it reads the store again.
pub const POLL: Duration = Duration::from_millis(200);
/// How long the stream waits after a failed read (the database away) before trying again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedQuery {
    /// The last position handled (0, or absent: from the start).
    after: Option<u64>,
    /// Events per page, 1 to 1000 (default 100); not taken by the stream.
    limit: Option<u32>,
}

fn query(query: Result<Query<FeedQuery>, QueryRejection>) -> Result<FeedQuery, Error> {
    let Query(q) = query.map_err(|e| {
        Error::BadRequest(format!(
            "use `after=<the last position handled>` and `limit=<1 to {MAX_PAGE}>` ({})",
            e.body_text()
        ))
    })?;
    Ok(q)
}

/// The events after a position, in commit order.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "feed",
    params(("after" = Option<u64>, Query, description = "The last position handled (default 0: from the start)"),
           ("limit" = Option<u32>, Query, description = "Events per page, 1 to 1000 (default 100)")),
    responses((status = 200, description = "The events after `after`, in position order, and the position to read on from", body = FeedView), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = super::Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn list<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<FeedView>, Error> {
    let q = query(q)?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::BadRequest(format!(
            "`limit={limit}` is out of range: use 1 to {MAX_PAGE}"
        )));
    }
    // The head first: every event of the page is then at or below it.
    let head = o.store().feed_head().await.map_err(runtime::Error::from)?;
    let events = o
        .store()
        .feed(after, limit)
        .await
        .map_err(runtime::Error::from)?;
    let next = events.last().map_or(after, |e| e.position);
    Ok(Json(FeedView {
        events: events.into_iter().map(FeedEventView::from).collect(),
        next,
        head: head.max(next),
    }))
}

/// The events after a position, then each one as it commits, as server-sent events.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", operation_id = "feed_stream",
    params(("after" = Option<u64>, Query, description = "The last position handled; a `Last-Event-ID` header wins over it"),
           ("Last-Event-ID" = Option<u64>, Header, description = "The `id` of the last event received, sent by a reconnecting EventSource")),
    responses((status = 200, description = "`text/event-stream`: `event: saga_event`, `id: <position>`, `data:` the event as in `GET /v1/events`", content_type = "text/event-stream"), (status = 400, description = "The request does not validate; `detail` says how to fix it", body = super::Problem, content_type = "application/problem+json"), (status = 401, description = "A token is required and was missing or wrong", body = super::Problem, content_type = "application/problem+json")))]
pub(super) async fn stream<S: EventStore, T: Transport>(
    State(o): State<Orchestrator<S, T>>,
    headers: HeaderMap,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Error> {
    let q = query(q)?;
    if q.limit.is_some() {
        return Err(Error::BadRequest(
            "the stream takes no `limit`: it sends every event after `after`".into(),
        ));
    }
    let after = match headers.get("last-event-id") {
        None => q.after.unwrap_or(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Error::BadRequest(
                    "`Last-Event-ID` must be the `id` of an event of this stream (a position)"
                        .into(),
                )
            })?,
    };
    let state = (o, after, VecDeque::new());
    let events = futures::stream::unfold(state, |(o, mut after, mut ready)| async move {
        loop {
            if let Some(event) = ready.pop_front() {
                let event: FeedEventView = event;
                after = event.event.position;
                let sse = SseEvent::default()
                    .event("saga_event")
                    .id(after.to_string())
                    .data(serde_json::to_string(&event).unwrap_or_default());
                return Some((Ok(sse), (o, after, ready)));
            }
            match o.store().feed(after, MAX_PAGE).await {
                Ok(page) if page.is_empty() => tokio::time::sleep(POLL).await,
                Ok(page) => ready.extend(page.into_iter().map(FeedEventView::from)),
                Err(e) => {
                    tracing::warn!(error = %e, "the event feed cannot be read; trying again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
