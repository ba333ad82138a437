//! `--preload N`: N completed `place_order` sagas written straight into the event store before
//! the run, to measure with a large store.
//!
//! The events are the real ones: the pure core decides one saga from a start and a succeeding
//! reply to every command, exactly as the runtime would, and each preloaded saga is a copy of
//! it under its own id (in the ids and message ids of its payloads too). They are written
//! through the event store itself ([`EventStore::create`], many at once, so its group commit
//! puts a few hundred in each transaction): the bench knows nothing of the store's tables.

use crate::Error;
use futures::TryStreamExt;
use saga_core::{Action, EVENT_SCHEMA, Input, Occurred, SagaState};
use saga_orchestrator::runtime::Registry;
use saga_orchestrator::store::{Created, EventLog, NewEvent, NewSaga, SqlStore, input_tags};
use saga_protocol::{Outcome, ReplyEnvelope, Timestamp};
use std::path::Path;
use uuid::Uuid;

/// Creates in flight at once: enough for the store's writer to fill its transactions.
const IN_FLIGHT: usize = 512;

/// The events of one completed saga, decided by the core.
fn completed_saga(
    def: &saga_core::Definition,
    id: Uuid,
    at: Timestamp,
) -> Result<Vec<Occurred>, Error> {
    let input = serde_json::json!({"customer_id": "preload", "amount": 100});
    let mut state = SagaState::new(id);
    let mut events = Vec::new();
    let mut new = saga_core::decide(
        def,
        &state,
        Input::Start {
            input,
            trace_context: None,
        },
        at,
    )?;
    while !new.is_empty() {
        state = new.iter().fold(state, saga_core::evolve);
        let actions = saga_core::actions(&state, &new);
        events.append(&mut new);
        for action in actions {
            if let Action::SendCommand(c) | Action::SendCompensation(c) = action {
                let output = serde_json::json!({"order_id": Uuid::new_v4()});
                let reply = ReplyEnvelope::answering(&c, Outcome::Succeeded { output }, at);
                let mut more = saga_core::decide(def, &state, Input::Reply(reply), at)?;
                new.append(&mut more);
            }
        }
    }
    if !state.status.is_terminal() {
        return Err(format!("preloaded saga ended {}", state.status.as_str()).into());
    }
    Ok(events)
}

/// Writes `count` completed sagas into the event store at `url`.
pub async fn run(url: &str, sagas_dir: &Path, count: u64) -> Result<(), Error> {
    let registry = Registry::load_dir(sagas_dir).map_err(|e| e.to_string())?;
    let def = registry
        .latest("place_order")
        .ok_or("no place_order saga definition")?
        .clone();
    let store = SqlStore::open(url, 4).await?;
    // The core decides one saga; every preloaded saga is a copy with its own id, which is
    // what differs between two completed sagas of the same input.
    let template_id = Uuid::new_v4();
    let template = completed_saga(&def, template_id, Timestamp::now())?;
    let template_text = template_id.to_string();
    let payloads: Vec<(&'static str, String)> = template
        .iter()
        .map(|e| (e.event.type_name(), e.event.to_payload().to_string()))
        .collect();
    let input = serde_json::json!({"customer_id": "preload", "amount": 100});
    let tags = input_tags(&input);
    let digest = input.to_string();
    // One millisecond apart, ending just before now, so they sort as created in order.
    let start = Timestamp::now().millis() - i64::try_from(count).unwrap_or(0) - 1;
    let copy = |n: u64| -> Result<(NewSaga, Vec<NewEvent>, Timestamp), Error> {
        let saga_id = Uuid::new_v4();
        let id = saga_id.to_string();
        let at = Timestamp(start + i64::try_from(n).unwrap_or(0));
        let events = payloads
            .iter()
            .map(|(event_type, payload)| {
                Ok(NewEvent {
                    event_type: (*event_type).to_string(),
                    schema_version: EVENT_SCHEMA.version_of(event_type),
                    payload: serde_json::from_str(&payload.replace(&template_text, &id))?,
                    occurred_at: at,
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let saga = NewSaga {
            saga_id,
            name: def.name.clone(),
            definition_version: def.version,
            idempotency_key: None,
            input_digest: digest.clone(),
            tags: tags.clone(),
            deadline_at: None,
        };
        Ok((saga, events, at))
    };
    futures::stream::iter((0..count).map(copy))
        .map_ok(|(saga, events, at)| {
            let store = store.clone();
            async move {
                match store.create(saga, events, "completed", at).await? {
                    Created::New => Ok(()),
                    Created::Existing(record) => {
                        Err(format!("preloaded saga {} existed already", record.saga_id).into())
                    }
                }
            }
        })
        .try_buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    store.close().await;
    Ok(())
}
