//! `--preload N`: N completed `place_order` sagas written straight into the event store before
//! the run, to measure with a large store.
//!
//! The events are the real ones: the pure core decides one saga from a start and a succeeding
//! reply to every command, exactly as the runtime would, and each preloaded saga is a copy of
//! it under its own id (in the ids and message ids of its payloads too). They are written with
//! one INSERT per saga and one per saga's events, a thousand sagas per transaction, into the tables the migrations
//! create (`sagas`, `saga_events`), after the store has been opened once to migrate them.

use crate::Error;
use saga_core::{Action, EVENT_SCHEMA_VERSION, Input, Occurred, SagaState};
use saga_orchestrator::runtime::Registry;
use saga_orchestrator::store::SqlStore;
use saga_protocol::{Outcome, ReplyEnvelope, Timestamp};
use sqlx::{AssertSqlSafe, ConnectOptions};
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use uuid::Uuid;

/// Sagas per transaction.
const BATCH: usize = 1000;

/// One saga's rows: its id, input digest and events (type, payload text, occurred at).
struct Row {
    id: String,
    digest: String,
    events: Vec<(&'static str, String, i64)>,
}

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
    // Opening the store applies the migrations.
    drop(SqlStore::open(url, 1).await?);
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") && !url.contains('?') {
        format!("{url}?mode=rwc")
    } else {
        url.to_string()
    };
    let options = sqlx::any::AnyConnectOptions::from_str(&url)?.disable_statement_logging();
    let pool = sqlx::AnyPool::connect_with(options).await?;
    // The core decides one saga; every preloaded saga is a copy with its own id, which is
    // what differs between two completed sagas of the same input.
    let template_id = Uuid::new_v4();
    let template = completed_saga(&def, template_id, Timestamp::now())?;
    let template_text = template_id.to_string();
    let payloads: Vec<(&'static str, String)> = template
        .iter()
        .map(|e| (e.event.type_name(), e.event.to_payload().to_string()))
        .collect();
    let digest = serde_json::json!({"customer_id": "preload", "amount": 100}).to_string();
    let start = Timestamp::now().millis() - i64::try_from(count).unwrap_or(0) - 1;
    let mut n = 0u64;
    while n < count {
        let size = usize::try_from((count - n).min(BATCH as u64)).unwrap_or(BATCH);
        let rows: Vec<Row> = (0..size as u64)
            .map(|k| {
                let id = Uuid::new_v4().to_string();
                let at = start + i64::try_from(n + k).unwrap_or(0);
                let events = payloads
                    .iter()
                    .map(|(t, p)| (*t, p.replace(&template_text, &id), at))
                    .collect();
                Row {
                    id,
                    digest: digest.clone(),
                    events,
                }
            })
            .collect();
        write(
            &pool,
            &def,
            &rows,
            Timestamp(start + i64::try_from(n).unwrap_or(0)),
        )
        .await?;
        n += size as u64;
    }
    pool.close().await;
    Ok(())
}

async fn write(
    pool: &sqlx::AnyPool,
    def: &saga_core::Definition,
    rows: &[Row],
    at: Timestamp,
) -> Result<(), Error> {
    // One short statement per saga and per saga's events (prepared once, then cached):
    // very long multi-row statements are far slower through sqlx's Any driver.
    let events = rows.first().map_or(0, |r| r.events.len());
    let mut events_sql = String::from(
        "INSERT INTO saga_events (saga_id, sequence, event_type, schema_version, payload, \
         occurred_at, recorded_at) VALUES ",
    );
    for e in 0..events {
        let p = e * 7;
        let sep = if e == 0 { "" } else { ", " };
        let _ = write!(
            events_sql,
            "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7
        );
    }
    let mut tx = pool.begin().await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
             idempotency_key, input_digest, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8)",
        )
        .bind(r.id.clone())
        .bind(def.name.clone())
        .bind(i64::from(def.version))
        .bind("completed")
        .bind(i64::try_from(r.events.len()).unwrap_or(0))
        .bind(r.digest.clone())
        .bind(at.millis())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        // The searchable input fields, as the store writes them for a started saga.
        sqlx::query(
            "INSERT INTO saga_tags (saga_id, key, value, created_at) \
             VALUES ($1, 'amount', '100', $2), ($1, 'customer_id', 'preload', $2)",
        )
        .bind(r.id.clone())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        let mut query = sqlx::query(AssertSqlSafe(events_sql.clone()));
        for (sequence, (event_type, payload, occurred_at)) in (1i64..).zip(&r.events) {
            query = query
                .bind(r.id.clone())
                .bind(sequence)
                .bind(*event_type)
                .bind(i64::from(EVENT_SCHEMA_VERSION))
                .bind(payload.clone())
                .bind(*occurred_at)
                .bind(at.millis());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
