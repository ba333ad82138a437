//! Searching the read model: the searchable tags of a start input, the query, and the cursor
//! of its pages.

use super::SagaRecord;
use saga_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest tag value stored; longer input fields are not searchable.
pub const MAX_TAG_LEN: usize = 200;

/// The searchable fields of a start input: its top-level strings, numbers and booleans, as
/// text (`"alice"` → `alice`, `500` → `500`, `true` → `true`). Objects, arrays, nulls and
/// values longer than [`MAX_TAG_LEN`] are left out.
///
/// ```
/// use saga_orchestrator::store::input_tags;
/// let tags = input_tags(&serde_json::json!({"customer_id": "alice", "amount": 500, "items": []}));
/// assert_eq!(tags, [("amount".to_string(), "500".to_string()), ("customer_id".into(), "alice".into())]);
/// ```
pub fn input_tags(input: &serde_json::Value) -> Vec<(String, String)> {
    let Some(fields) = input.as_object() else {
        return Vec::new();
    };
    let mut tags: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            (text.len() <= MAX_TAG_LEN && key.len() <= MAX_TAG_LEN).then(|| (key.clone(), text))
        })
        .collect();
    tags.sort();
    tags
}

/// Where a page of [`EventStore::search`](super::EventStore::search) ended: the last saga returned. The next page holds
/// the sagas created strictly before it (by `created_at`, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub saga_id: Uuid,
}

impl Cursor {
    /// The cursor after `record`.
    pub fn after(record: &SagaRecord) -> Self {
        Cursor {
            created_at: record.created_at,
            saga_id: record.saga_id,
        }
    }
}

impl std::fmt::Display for Cursor {
    /// `{created_at millis}_{saga id}`, opaque to clients.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created_at.millis(), self.saga_id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (millis, id) = s.split_once('_').ok_or(())?;
        Ok(Cursor {
            created_at: Timestamp(millis.parse().map_err(|_| ())?),
            saga_id: Uuid::parse_str(id).map_err(|_| ())?,
        })
    }
}

/// A search of the read model. Every filter that is set must match; results are newest first
/// (by `created_at`, then id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SagaQuery {
    /// Any of these statuses (all when empty).
    pub statuses: Vec<String>,
    pub name: Option<String>,
    pub definition_version: Option<u32>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created strictly before.
    pub created_until: Option<Timestamp>,
    /// An input field with this exact value (see [`input_tags`]).
    pub tag: Option<(String, String)>,
    /// Continue after this saga (the previous page's last).
    pub after: Option<Cursor>,
    /// Only sagas whose deadline (or, without one, whose start) is before this: with the
    /// active statuses, the overdue ones.
    pub overdue_before: Option<Timestamp>,
    pub limit: u32,
}
