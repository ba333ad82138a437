//! `--preload N`: N completed `place_order` sagas written straight into the event store before
//! the run, to measure with a large store.
//!
//! Each saga's events are the real ones: the pure core decides them from a start and a
//! succeeding reply to every command, exactly as the runtime would. They are written with
//! multi-row INSERTs, a few hundred sagas per transaction, into the tables the migrations
//! create (`sagas`, `saga_events`), after the store has been opened once to migrate them.

use super::super::Error;
use crate::runtime::Registry;
use crate::store::SqlStore;
use saga_core::{Action, EVENT_SCHEMA_VERSION, Input, Occurred, SagaState};
use saga_protocol::{Outcome, ReplyEnvelope, Timestamp};
use sqlx::AssertSqlSafe;
use std::fmt::Write as _;
use std::path::Path;
use uuid::Uuid;

/// Sagas per transaction; at ~8 events of 7 binds each this stays below SQLite's 32766 binds.
const BATCH: usize = 400;

struct Row {
    id: String,
    digest: String,
    events: Vec<Occurred>,
}

/// The events of one completed saga.
fn completed_saga(def: &saga_core::Definition, n: u64, at: Timestamp) -> Result<Row, Error> {
    let id = Uuid::new_v4();
    let input = serde_json::json!({"customer_id": format!("preload-{}", n % 1000), "amount": 100});
    let digest = input.to_string();
    let mut state = SagaState::new(id);
    let mut events = Vec::new();
    let mut new = saga_core::decide(def, &state, Input::Start { input }, at)?;
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
    Ok(Row {
        id: id.to_string(),
        digest,
        events,
    })
}

/// Writes `count` completed sagas into the event store at `url`.
pub async fn run(url: &str, sagas_dir: &Path, count: u64) -> Result<(), Error> {
    let registry = Registry::load_dir(sagas_dir).map_err(|e| {
        e.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let def = registry
        .get("place_order")
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
    let pool = sqlx::AnyPool::connect(&url).await?;
    let start = Timestamp::now().millis() - i64::try_from(count).unwrap_or(0) - 1;
    let mut n = 0u64;
    while n < count {
        let size = usize::try_from((count - n).min(BATCH as u64)).unwrap_or(BATCH);
        let mut rows = Vec::with_capacity(size);
        for k in 0..size as u64 {
            let at = Timestamp(start + i64::try_from(n + k).unwrap_or(0));
            rows.push(completed_saga(&def, n + k, at)?);
        }
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
    let mut tx = pool.begin().await?;
    let mut sql = String::from(
        "INSERT INTO sagas (saga_id, name, definition_version, status, version, \
         idempotency_key, input_digest, created_at, updated_at) VALUES ",
    );
    for r in 0..rows.len() {
        let p = r * 8;
        let sep = if r == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{sep}(${}, ${}, ${}, ${}, ${}, NULL, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8
        );
    }
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for r in rows {
        query = query
            .bind(r.id.clone())
            .bind(def.name.clone())
            .bind(i64::from(def.version))
            .bind("completed")
            .bind(i64::try_from(r.events.len()).unwrap_or(0))
            .bind(r.digest.clone())
            .bind(at.millis())
            .bind(at.millis());
    }
    query.execute(&mut *tx).await?;

    let mut sql = String::from(
        "INSERT INTO saga_events (saga_id, sequence, event_type, schema_version, payload, \
         occurred_at, recorded_at) VALUES ",
    );
    let mut p = 0;
    for r in rows {
        for _ in &r.events {
            let sep = if p == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7
            );
            p += 7;
        }
    }
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for r in rows {
        for (sequence, e) in (1i64..).zip(&r.events) {
            query = query
                .bind(r.id.clone())
                .bind(sequence)
                .bind(e.event.type_name())
                .bind(i64::from(EVENT_SCHEMA_VERSION))
                .bind(e.event.to_payload().to_string())
                .bind(e.at.millis())
                .bind(at.millis());
        }
    }
    query.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
