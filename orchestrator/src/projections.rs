//! The orchestrator's read model checked against its log, and rebuilt from it.
//!
//! The `sagas` projection is each saga's `sagas` row (name, version, status, times, timer) and
//! its `saga_tags` rows. Both are written with every append, and both must equal what the
//! fold of the saga's log says: its `SagaStarted` names the definition and holds the input
//! (the digest and the tags), the fold gives the status and the timers, the first and last
//! events' `recorded_at` the row's times. [`verify`] compares the two, a page of sagas at a
//! time, and lists every difference; [`rebuild`] writes what the fold says over each row that
//! differs ([`Projection::reproject`]), while the system runs: a saga appended to in between
//! is folded again. Both go by saga id, so a rebuild that stopped resumes from the last id of
//! its last page.
//!
//! Two columns are not the log's: the idempotency key (the store's claim, with its own window)
//! is kept as it is, and a digest written before digests were canonical (`sha256:…`) is the
//! input as it was sent, which the log does not keep, so it is kept too.

use crate::runtime::{decode_all, input_digest};
use crate::store::{self, Projection, SagaRecord, SagaRow, input_tags};
use saga_core::SagaState;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The name of the orchestrator's projection, as `saga projections` takes it.
pub const SAGAS: &str = "sagas";

/// Sagas per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 500;

/// Times a rewrite is made again from a log that moved on while it was made.
const MAX_RACES: usize = 8;

/// One way a saga's rows differ from what its log says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub saga_id: Uuid,
    /// The column (`status`, `version`, `due_at`, `tags`, …); `row` when the saga has a log
    /// and no row, or a row and no log; `log` when its log cannot be folded (then `stored`
    /// says why, and nothing can be rebuilt from it).
    pub field: &'static str,
    /// What the read model holds.
    pub stored: Value,
    /// What the fold of the log says.
    pub expected: Value,
}

/// What one page of a verify or a rebuild found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Page {
    /// Sagas compared.
    pub checked: u64,
    /// Every difference found (a rebuild lists those it mended, and any it could not).
    pub differences: Vec<Difference>,
    /// Sagas whose rows were rewritten (always 0 for a verify).
    pub rebuilt: u64,
    /// The id to pass as `after` for the next page; `None` after the last.
    pub next: Option<Uuid>,
}

/// Compares the rows of the sagas after `after` (at most `limit`) with the fold of their logs.
pub async fn verify<S: Projection>(
    store: &S,
    after: Option<Uuid>,
    limit: u32,
) -> store::Result<Page> {
    let ids = store.saga_ids(after, limit).await?;
    let mut page = next_page(&ids, limit);
    for saga_id in ids {
        let projected = store.projected(saga_id).await?;
        page.checked += 1;
        page.differences
            .extend(match expected(saga_id, &projected) {
                Ok(expected) => differences(saga_id, projected.row.as_ref(), expected.as_ref()),
                Err(unreadable) => vec![unreadable],
            });
    }
    Ok(page)
}

/// Rewrites, from the fold of their logs, the rows of the sagas after `after` (at most
/// `limit`) that differ from it.
pub async fn rebuild<S: Projection>(
    store: &S,
    after: Option<Uuid>,
    limit: u32,
) -> store::Result<Page> {
    let ids = store.saga_ids(after, limit).await?;
    let mut page = next_page(&ids, limit);
    for saga_id in ids {
        page.checked += 1;
        for _ in 0..MAX_RACES {
            let projected = store.projected(saga_id).await?;
            let expected = match expected(saga_id, &projected) {
                Ok(expected) => expected,
                Err(unreadable) => {
                    page.differences.push(unreadable);
                    break;
                }
            };
            let found = differences(saga_id, projected.row.as_ref(), expected.as_ref());
            if found.is_empty() {
                break;
            }
            let log_version = projected.events.last().map_or(0, |e| e.sequence);
            if store.reproject(saga_id, log_version, expected).await? {
                page.differences.extend(found);
                page.rebuilt += 1;
                break;
            }
            // Appended to since it was read: fold it again.
        }
    }
    Ok(page)
}

fn next_page(ids: &[Uuid], limit: u32) -> Page {
    let full = ids.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    Page {
        next: if full { ids.last().copied() } else { None },
        ..Page::default()
    }
}

/// The rows the fold of the saga's log says it has (`None`: it has none), or why the log
/// cannot be folded.
fn expected(saga_id: Uuid, projected: &store::Projected) -> Result<Option<SagaRow>, Difference> {
    let stored = projected.row.as_ref();
    let events = &projected.events;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        // Nothing to fold. A saga created without events has its row at version 0; a row
        // that claims events the log does not have belongs to no saga.
        return Ok(stored.filter(|row| row.record.version == 0).cloned());
    };
    let unreadable = |reason: String| Difference {
        saga_id,
        field: "log",
        stored: Value::String(reason),
        expected: Value::Null,
    };
    if let Some((event, sequence)) = events.iter().zip(1u64..).find(|(e, n)| e.sequence != *n) {
        return Err(unreadable(format!(
            "the log has event {} where event {sequence} should be",
            event.sequence
        )));
    }
    let occurred = decode_all(saga_id, events).map_err(|e| unreadable(e.to_string()))?;
    let state = SagaState::replay(saga_id, &occurred);
    let digest = match stored {
        Some(row) if !row.record.input_digest.starts_with("sha256:") => {
            row.record.input_digest.clone()
        }
        _ => input_digest(&state.input),
    };
    Ok(Some(SagaRow {
        record: SagaRecord {
            saga_id,
            name: state.name.clone(),
            definition_version: state.definition_version,
            status: state.status.as_str().to_string(),
            version: last.sequence,
            idempotency_key: stored.and_then(|row| row.record.idempotency_key.clone()),
            input_digest: digest,
            created_at: first.recorded_at,
            updated_at: last.recorded_at,
            deadline_at: state.deadline_at,
        },
        due_at: state.timers().into_iter().min(),
        tags: input_tags(&state.input),
    }))
}

/// Every column in which `stored` differs from `expected`.
fn differences(
    saga_id: Uuid,
    stored: Option<&SagaRow>,
    expected: Option<&SagaRow>,
) -> Vec<Difference> {
    let (stored, expected) = match (stored, expected) {
        (None, None) => return Vec::new(),
        (Some(stored), Some(expected)) => (stored, expected),
        (stored, expected) => {
            return vec![Difference {
                saga_id,
                field: "row",
                stored: stored.map_or(Value::Null, summary),
                expected: expected.map_or(Value::Null, summary),
            }];
        }
    };
    let time =
        |t: Option<saga_protocol::Timestamp>| t.map_or(Value::Null, |t| json!(t.to_string()));
    let (s, e) = (&stored.record, &expected.record);
    let columns = [
        ("name", json!(s.name), json!(e.name)),
        (
            "definition_version",
            json!(s.definition_version),
            json!(e.definition_version),
        ),
        ("status", json!(s.status), json!(e.status)),
        ("version", json!(s.version), json!(e.version)),
        ("input_digest", json!(s.input_digest), json!(e.input_digest)),
        (
            "created_at",
            time(Some(s.created_at)),
            time(Some(e.created_at)),
        ),
        (
            "updated_at",
            time(Some(s.updated_at)),
            time(Some(e.updated_at)),
        ),
        ("deadline_at", time(s.deadline_at), time(e.deadline_at)),
        ("due_at", time(stored.due_at), time(expected.due_at)),
        ("tags", tags(&stored.tags), tags(&expected.tags)),
    ];
    columns
        .into_iter()
        .filter(|(_, stored, expected)| stored != expected)
        .map(|(field, stored, expected)| Difference {
            saga_id,
            field,
            stored,
            expected,
        })
        .collect()
}

/// A row in a difference of `row`: what it says the saga is.
fn summary(row: &SagaRow) -> Value {
    json!({
        "name": row.record.name,
        "status": row.record.status,
        "version": row.record.version,
    })
}

fn tags(tags: &[(String, String)]) -> Value {
    let mut sorted = tags.to_vec();
    sorted.sort();
    Value::Object(
        sorted
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect(),
    )
}
