//! A live feed of sagas reaching a terminal status, served as server-sent events.
//!
//! `GET /v1/feed/terminal` streams one event per saga that this orchestrator process records as
//! completed, compensated or stuck, from the moment the client connects:
//!
//! ```text
//! event: terminal
//! data: {"saga_id":"5f0c…","status":"completed","recorded_at":1795456800123}
//! ```
//!
//! It is a projection like any other: [`Watched`] wraps the event store and announces a terminal
//! status only after the append that stored it has committed, so what the feed says is in the
//! log. It is best effort and not durable: a client that falls behind gets `event: lagged` with
//! the number of announcements it missed, and must read those sagas' status from the API. Each
//! replica announces the sagas it moved itself, so a client of several replicas follows them all.
//! A subscriber that must miss nothing reads the durable feed instead (`GET /v1/events/stream`,
//! [`crate::store::EventLog::feed`]).
//! `saga bench` uses it to see each saga end without polling.
//!
//! ```no_run
//! # async fn demo(o: saga_orchestrator::runtime::Orchestrator) {
//! let (o, feed) = saga_orchestrator::watch::wrap(o);
//! let app = saga_orchestrator::api::router(o).merge(saga_orchestrator::watch::router(feed));
//! # let _ = app;
//! # }
//! ```

use crate::runtime::Orchestrator;
use crate::store::{
    Created, DefinitionStore, DefinitionUse, EventLog, EventStore, NewDefinition, NewEvent,
    NewSaga, Projected, Projection, ReadModel, Result, Retirement, SagaRecord, SagaRow, Schedule,
    Snapshot, Snapshots, StoredDefinition, StoredEvent, Summary,
};
use crate::transport::Transport;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use saga_core::Status;
use saga_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Announcements kept for a slow subscriber before it is told it lagged.
const CAPACITY: usize = 16_384;

/// One saga that reached a terminal status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminal {
    pub saga_id: Uuid,
    /// `completed`, `compensated` or `stuck`.
    pub status: String,
    /// When the orchestrator recorded it (ms since the epoch).
    pub recorded_at: Timestamp,
}

/// The sending side of the feed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: broadcast::Sender<Terminal>,
}

impl Feed {
    pub fn new() -> Self {
        Feed {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Announcements from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Terminal> {
        self.tx.subscribe()
    }

    fn announce(&self, saga_id: Uuid, status: &str, recorded_at: Timestamp) {
        let terminal = [Status::Completed, Status::Compensated, Status::Stuck]
            .iter()
            .any(|s| s.as_str() == status);
        if terminal {
            // No subscriber is not an error: nobody is watching.
            let _ = self.tx.send(Terminal {
                saga_id,
                status: status.to_string(),
                recorded_at,
            });
        }
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

/// An event store that announces terminal statuses on a [`Feed`] after they are committed.
#[derive(Debug, Clone)]
pub struct Watched<S> {
    inner: S,
    feed: Feed,
}

impl<S> Watched<S> {
    pub fn new(inner: S, feed: Feed) -> Self {
        Watched { inner, feed }
    }
}

impl<S: EventStore> EventLog for Watched<S> {
    async fn create(
        &self,
        saga: NewSaga,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<Created> {
        let saga_id = saga.saga_id;
        let summary = summary.into();
        let status = summary.status.clone();
        let created = self
            .inner
            .create(saga, events, summary, recorded_at)
            .await?;
        if created == Created::New {
            self.feed.announce(saga_id, &status, recorded_at);
        }
        Ok(created)
    }

    async fn append(
        &self,
        saga_id: Uuid,
        expected_version: u64,
        events: Vec<NewEvent>,
        summary: impl Into<Summary> + Send,
        recorded_at: Timestamp,
    ) -> Result<u64> {
        let wrote = !events.is_empty();
        let summary = summary.into();
        let status = summary.status.clone();
        let version = self
            .inner
            .append(saga_id, expected_version, events, summary, recorded_at)
            .await?;
        if wrote {
            self.feed.announce(saga_id, &status, recorded_at);
        }
        Ok(version)
    }

    async fn load(&self, saga_id: Uuid) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        self.inner.load(saga_id).await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        self.inner.feed(after, limit).await
    }

    async fn feed_head(&self) -> Result<u64> {
        self.inner.feed_head().await
    }

    async fn release_key(&self, saga_id: Uuid) -> Result<()> {
        self.inner.release_key(saga_id).await
    }
}

impl<S: EventStore> crate::store::Archive for Watched<S> {
    async fn archive(&self, retire: &crate::store::Retire<'_>, at: Timestamp) -> Result<Vec<Uuid>> {
        self.inner.archive(retire, at).await
    }

    async fn archived(&self, saga_id: Uuid) -> Result<Option<crate::store::Archived>> {
        self.inner.archived(saga_id).await
    }

    async fn archived_count(&self) -> Result<u64> {
        self.inner.archived_count().await
    }
}

impl<S: EventStore> Schedule for Watched<S> {
    async fn with_status(&self, statuses: &[&str]) -> Result<Vec<Uuid>> {
        self.inner.with_status(statuses).await
    }

    async fn quiet(&self, statuses: &[&str], updated_before: Timestamp) -> Result<Vec<Uuid>> {
        self.inner.quiet(statuses, updated_before).await
    }

    async fn due(&self, until: Timestamp, limit: u32) -> Result<Vec<(Uuid, Timestamp)>> {
        self.inner.due(until, limit).await
    }
}

impl<S: EventStore> ReadModel for Watched<S> {
    async fn list(&self, limit: u32) -> Result<Vec<SagaRecord>> {
        self.inner.list(limit).await
    }

    async fn search(&self, query: &crate::store::SagaQuery) -> Result<Vec<SagaRecord>> {
        self.inner.search(query).await
    }

    async fn count_overdue(&self, statuses: &[&str], before: Timestamp) -> Result<u64> {
        self.inner.count_overdue(statuses, before).await
    }

    async fn status_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        self.inner.status_counts().await
    }

    async fn started_per_bucket(
        &self,
        since: Timestamp,
        bucket: std::time::Duration,
        buckets: usize,
    ) -> Result<Vec<u64>> {
        self.inner.started_per_bucket(since, bucket, buckets).await
    }
}

impl<S: EventStore> Projection for Watched<S> {
    async fn saga_ids(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Uuid>> {
        self.inner.saga_ids(after, limit).await
    }

    async fn projected(&self, saga_id: Uuid) -> Result<Projected> {
        self.inner.projected(saga_id).await
    }

    async fn reproject(
        &self,
        saga_id: Uuid,
        log_version: u64,
        row: Option<SagaRow>,
    ) -> Result<bool> {
        self.inner.reproject(saga_id, log_version, row).await
    }
}

impl<S: EventStore> Snapshots for Watched<S> {
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.put_snapshot(snapshot).await
    }

    async fn snapshot(&self, saga_id: Uuid) -> Result<Option<Snapshot>> {
        self.inner.snapshot(saga_id).await
    }

    async fn load_after(
        &self,
        saga_id: Uuid,
        after: u64,
    ) -> Result<Option<(SagaRecord, Vec<StoredEvent>)>> {
        self.inner.load_after(saga_id, after).await
    }

    async fn drop_snapshots(&self) -> Result<u64> {
        self.inner.drop_snapshots().await
    }
}

impl<S: EventStore> DefinitionStore for Watched<S> {
    async fn put_definition(&self, definition: NewDefinition) -> Result<StoredDefinition> {
        self.inner.put_definition(definition).await
    }

    async fn definition(&self, name: &str, version: u32) -> Result<Option<StoredDefinition>> {
        self.inner.definition(name, version).await
    }

    async fn definitions(&self, in_flight: &[&str]) -> Result<Vec<DefinitionUse>> {
        self.inner.definitions(in_flight).await
    }

    async fn retire_definition(
        &self,
        name: &str,
        version: u32,
        in_flight: &[&str],
        at: Timestamp,
    ) -> Result<Retirement> {
        self.inner
            .retire_definition(name, version, in_flight, at)
            .await
    }
}

/// The same orchestrator over a store that announces terminal statuses, and the feed.
pub fn wrap<S: EventStore, T: Transport>(
    o: Orchestrator<S, T>,
) -> (Orchestrator<Watched<S>, T>, Feed) {
    let feed = Feed::new();
    let store = Watched::new(o.store().clone(), feed.clone());
    let watched = Orchestrator::new(
        store,
        o.transport().clone(),
        o.registry().clone(),
        o.options().clone(),
    )
    .with_clock(o.clock());
    (watched, feed)
}

/// `GET /v1/feed/terminal`.
pub fn router(feed: Feed) -> Router {
    Router::new()
        .route("/v1/feed/terminal", get(terminal))
        .with_state(feed)
}

async fn terminal(
    State(feed): State<Feed>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(t) => SseEvent::default()
                .event("terminal")
                .data(serde_json::to_string(&t).unwrap_or_default()),
            Err(broadcast::error::RecvError::Lagged(missed)) => SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::MemoryStore;

    fn event() -> NewEvent {
        NewEvent {
            event_type: "SagaStarted".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            occurred_at: Timestamp(1),
        }
    }

    #[tokio::test]
    async fn announces_terminal_appends_only_after_they_are_stored() {
        let feed = Feed::new();
        let store = Watched::new(MemoryStore::new(), feed.clone());
        let mut rx = feed.subscribe();
        let id = Uuid::new_v4();
        let saga = NewSaga {
            saga_id: id,
            name: "s".into(),
            definition_version: 1,
            idempotency_key: None,
            input_digest: "{}".into(),
            tags: Vec::new(),
            deadline_at: None,
        };
        store
            .create(saga, vec![event()], "running", Timestamp(1))
            .await
            .unwrap();
        store
            .append(id, 1, vec![event()], "running", Timestamp(2))
            .await
            .unwrap();
        // A losing writer announces nothing.
        assert!(
            store
                .append(id, 1, vec![event()], "completed", Timestamp(3))
                .await
                .is_err()
        );
        assert!(rx.try_recv().is_err());
        store
            .append(id, 2, vec![event()], "compensated", Timestamp(4))
            .await
            .unwrap();
        let t = rx.try_recv().unwrap();
        assert_eq!(
            t,
            Terminal {
                saga_id: id,
                status: "compensated".into(),
                recorded_at: Timestamp(4)
            }
        );
    }
}
