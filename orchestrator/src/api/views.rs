//! JSON shapes of the API's answers.

use crate::runtime::Loaded;
use crate::store::{SagaRecord, StoredEvent};
use saga_core::StepState;
use saga_protocol::Timestamp;
use serde::Serialize;
use uuid::Uuid;

/// Answer to a start request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StartedView {
    pub saga_id: Uuid,
    /// False when an earlier request with the same Idempotency-Key created it.
    pub created: bool,
    pub links: Links,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub events: String,
}

impl Links {
    pub fn of(saga_id: Uuid) -> Self {
        Links {
            this: format!("/v1/sagas/{saga_id}"),
            events: format!("/v1/sagas/{saga_id}/events"),
        }
    }
}

/// One saga with its steps.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SagaView {
    pub saga_id: Uuid,
    pub name: String,
    pub definition_version: u32,
    /// The content hash of that version (its key in `GET /v1/definitions`), as recorded at
    /// start; absent for sagas started before definitions were stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition_hash: Option<String>,
    /// running, compensating, completed, compensated, stuck or aborted.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub reason: Option<String>,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Steps in the order they started: name, attempt, status, output, reason, started_at,
    /// ended_at, compensation_attempt, timeout_at, retry_at.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepState>,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
    pub idempotency_key: Option<String>,
    /// The saga's OpenTelemetry trace id (32 hex digits), when it was started with tracing
    /// on: paste it into the trace viewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When its forward path must be done by, if its definition has a deadline.
    pub deadline_at: Option<String>,
    /// Still running or compensating well past its deadline (or its start, without one):
    /// look at it (see the orchestrator's `--overdue-after`).
    pub overdue: bool,
    /// An aborted saga's steps whose effect may still exist (done, or maybe done, and not
    /// compensated): what the abort left for an operator to see to. Absent unless aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects_left: Option<Vec<String>>,
    /// When it was moved to the archive (see the orchestrator's `--retention`); absent while
    /// it is in the hot tables. An archived saga is final and is shown as it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
}

impl From<Loaded> for SagaView {
    fn from(l: Loaded) -> Self {
        let effects_left = (l.state.status == saga_core::Status::Aborted).then(|| {
            l.state
                .effects_left()
                .iter()
                .map(|s| s.name.clone())
                .collect()
        });
        SagaView {
            effects_left,
            saga_id: l.record.saga_id,
            name: l.record.name,
            definition_version: l.record.definition_version,
            definition_hash: l.state.definition_hash,
            status: l.state.status.as_str(),
            reason: l.state.reason,
            input: l.state.input,
            steps: l.state.steps,
            version: l.state.version,
            created_at: l.record.created_at.to_string(),
            updated_at: l.record.updated_at.to_string(),
            idempotency_key: l.record.idempotency_key,
            trace_id: l
                .state
                .trace_context
                .as_deref()
                .and_then(saga_telemetry::saga::SagaTrace::parse)
                .map(|t| t.trace_id().to_string()),
            deadline_at: l.state.deadline_at.map(ts),
            overdue: false,
            archived_at: l.archived_at.map(ts),
        }
    }
}

/// A line of a saga list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    pub saga_id: Uuid,
    pub name: String,
    pub definition_version: u32,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    /// Still running or compensating well past its deadline (or its start, without one).
    pub overdue: bool,
}

impl From<SagaRecord> for SummaryView {
    fn from(r: SagaRecord) -> Self {
        SummaryView {
            saga_id: r.saga_id,
            name: r.name,
            definition_version: r.definition_version,
            status: r.status,
            created_at: r.created_at.to_string(),
            updated_at: r.updated_at.to_string(),
            overdue: false,
        }
    }
}

/// A page of a saga search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub sagas: Vec<SummaryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Counts by status and recent throughput.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverviewView {
    pub counts: std::collections::BTreeMap<String, u64>,
    pub total: u64,
    /// Length of each throughput bucket, in seconds.
    pub bucket_seconds: u64,
    /// Sagas started per bucket, oldest first, the last bucket ending now.
    pub started: Vec<u64>,
}

/// One stored event, with both clocks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub sequence: u64,
    pub global_position: i64,
    /// Its place in the feed of every saga's events (`GET /v1/events`): commit order, no holes.
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of its type it was written with; `data` is shown in the newest version's
    /// shape (read through the upcasters), as the saga's state reads it.
    pub schema_version: u32,
    /// When it happened (the participant's clock for replies).
    pub occurred_at: String,
    /// When the orchestrator recorded it.
    pub recorded_at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<StoredEvent> for EventView {
    fn from(e: StoredEvent) -> Self {
        let stored = e.stored();
        // An event no upcaster reads is shown as it is stored: history stays viewable.
        let data = saga_core::upcast(&e.event_type, e.schema_version, e.payload.clone(), &stored)
            .unwrap_or(e.payload);
        EventView {
            sequence: e.sequence,
            global_position: e.global_position,
            position: e.position,
            event_type: e.event_type,
            schema_version: e.schema_version,
            occurred_at: ts(e.occurred_at),
            recorded_at: ts(e.recorded_at),
            data,
        }
    }
}

/// One event of the feed: a saga's event with the saga it belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedEventView {
    pub saga_id: Uuid,
    /// The event as `GET /v1/sagas/{id}/events` shows it; its `position` is the one to pass
    /// as `after` to read on.
    #[serde(flatten)]
    pub event: EventView,
}

impl From<StoredEvent> for FeedEventView {
    fn from(e: StoredEvent) -> Self {
        FeedEventView {
            saga_id: e.saga_id,
            event: e.into(),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedView {
    /// In position order.
    pub events: Vec<FeedEventView>,
    /// The position to pass as `after` for the next page: the last event's, or the `after`
    /// asked for when there is nothing newer yet.
    pub next: u64,
    /// The position of the last event committed, when the page was read: start there (as
    /// `after`) to follow only what comes next.
    pub head: u64,
}

fn ts(t: Timestamp) -> String {
    t.to_string()
}
