//! Starting a saga: decide its start, create it with its first events (or find the saga its
//! idempotency key names), then settle what was decided.

use super::handle::{summary, to_new_event};
use super::{Declined, Orchestrator, Result, Started};
use crate::store::{Created, EventStore, NewSaga};
use crate::transport::Transport;
use saga_core::{Input, SagaState};
use saga_telemetry::saga::SagaTrace;
use uuid::Uuid;

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    /// Starts the newest version of saga `name` with `input`. With an idempotency key
    /// already used for the same input, returns that saga instead; with a different input,
    /// fails with a conflict.
    pub async fn start(
        &self,
        name: &str,
        input: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<Started> {
        self.start_version(name, None, input, idempotency_key).await
    }

    /// [`Orchestrator::start`] on version `version` of the definition (the newest if `None`).
    pub async fn start_version(
        &self,
        name: &str,
        version: Option<u32>,
        input: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<Started> {
        let registry = self.registry();
        let entry = match version {
            Some(v) => registry.startable(name, v),
            None => registry.latest_entry(name),
        }
        .ok_or_else(|| Declined::UnknownDefinition {
            name: name.to_string(),
            version,
        })?;
        // Stored, with the same content, and not retired.
        self.check_startable(entry).await?;
        let def = &entry.definition;
        // Time-ordered (UUID v7): a new saga's rows, its events' and the participants' inbox
        // entries (keyed by ids that start with it) land at the end of their indexes instead
        // of at random pages; the low bits, which pick its partition, stay random.
        let saga_id = Uuid::now_v7();
        let now = self.now();
        let state = SagaState::new(saga_id);
        // What builds before digests stored: the input's text as given.
        let legacy_digest = input.to_string();
        // A new trace for the saga, stored with it: every later span, in any process and
        // after any restart, joins it.
        let trace = SagaTrace::start(&def.name);
        let start = Input::Start {
            input,
            trace_context: trace.as_ref().map(SagaTrace::traceparent),
        };
        let events = saga_core::decide(def, &state, start, now).map_err(Declined::InvalidInput)?;
        let state = events.iter().fold(state, saga_core::evolve);
        // The input as validated (defaults filled in): two spellings of it are one input.
        let input_digest = input_digest(&state.input);
        let saga = NewSaga {
            saga_id,
            name: def.name.clone(),
            definition_version: def.version,
            idempotency_key: idempotency_key.clone(),
            input_digest: input_digest.clone(),
            tags: crate::store::input_tags(&state.input),
            deadline_at: state.deadline_at,
        };
        let new_events: Vec<_> = events.iter().map(to_new_event).collect();
        let mut created = self
            .store
            .create(saga.clone(), new_events.clone(), summary(&state), now)
            .await?;
        if let Created::Existing(record) = &created
            && self.key_expired(record, now)
        {
            // The key's window has passed: it names that saga no more, and this start is new.
            self.store.release_key(record.saga_id).await?;
            created = self
                .store
                .create(saga, new_events, summary(&state), now)
                .await?;
        }
        match created {
            Created::New => {
                let before = SagaState::new(saga_id);
                self.settle(before, state, &events, false, trace.as_ref(), now)
                    .await?;
                Ok(Started {
                    saga_id,
                    created: true,
                })
            }
            Created::Existing(record)
                if record.input_digest == input_digest || record.input_digest == legacy_digest =>
            {
                Ok(Started {
                    saga_id: record.saga_id,
                    created: false,
                })
            }
            Created::Existing(record) => Err(Declined::IdempotencyConflict {
                key: idempotency_key.unwrap_or_default(),
                saga_id: record.saga_id,
                stored: record.input_digest,
                requested: input_digest,
            }
            .into()),
        }
    }

    /// Whether the idempotency key of the saga in `record` has outlived its window at `now`.
    fn key_expired(
        &self,
        record: &crate::store::SagaRecord,
        now: saga_protocol::Timestamp,
    ) -> bool {
        now.since(record.created_at) >= self.options().idempotency_window
    }
}

/// The digest stored with a saga's idempotency key: `sha256:` and the hex SHA-256 of its
/// input's canonical JSON (object keys sorted at every depth, no whitespace), so two
/// spellings of the same input are the same input.
pub fn input_digest(input: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut text = String::new();
    canonical(input, &mut text);
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes `value` as canonical JSON: keys sorted by their UTF-8 bytes, whatever order the
/// map keeps them in.
fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::input_digest;
    use serde_json::json;

    #[test]
    fn the_digest_is_of_the_input_not_of_its_spelling() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "é"}"#).unwrap_or_default();
        let b = json!({"a": "é", "b": [1, {"x": 1, "y": 2}]});
        assert_eq!(input_digest(&a), input_digest(&b));
        assert_ne!(
            input_digest(&a),
            input_digest(&json!({"a": "é", "b": [{"x": 1, "y": 2}, 1]}))
        );
        assert!(input_digest(&b).starts_with("sha256:"));
        assert_eq!(input_digest(&b).len(), "sha256:".len() + 64);
    }
}
