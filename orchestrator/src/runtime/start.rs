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
        let saga_id = Uuid::new_v4();
        let now = self.now();
        let state = SagaState::new(saga_id);
        let input_digest = input.to_string();
        // A new trace for the saga, stored with it: every later span, in any process and
        // after any restart, joins it.
        let trace = SagaTrace::start(&def.name);
        let start = Input::Start {
            input,
            trace_context: trace.as_ref().map(SagaTrace::traceparent),
        };
        let events = saga_core::decide(def, &state, start, now).map_err(Declined::InvalidInput)?;
        let state = events.iter().fold(state, saga_core::evolve);
        let saga = NewSaga {
            saga_id,
            name: def.name.clone(),
            definition_version: def.version,
            idempotency_key: idempotency_key.clone(),
            input_digest: input_digest.clone(),
            tags: crate::store::input_tags(&state.input),
            deadline_at: state.deadline_at,
        };
        let created = self
            .store
            .create(
                saga,
                events.iter().map(to_new_event).collect(),
                summary(&state),
                now,
            )
            .await?;
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
            Created::Existing(record) if record.input_digest == input_digest => Ok(Started {
                saga_id: record.saga_id,
                created: false,
            }),
            Created::Existing(record) => Err(Declined::IdempotencyConflict {
                key: idempotency_key.unwrap_or_default(),
                saga_id: record.saga_id,
            }
            .into()),
        }
    }
}
