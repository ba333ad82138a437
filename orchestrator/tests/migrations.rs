//! Upgrading a database that an earlier build wrote: its rows survive every later migration
//! and read as they did, on SQLite and PostgreSQL. The earlier schema is made by running the
//! repository's own migrations up to the version that build had.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_orchestrator::store::{Created, EventLog, NewEvent, NewSaga, SqlStore};
use saga_protocol::Timestamp;
use sqlx::AnyPool;
use sqlx::migrate::Migrator;
use std::path::Path;
use uuid::Uuid;

/// Applies the repository's `dir` migrations up to and including `version` to `url`.
async fn migrate_up_to(url: &str, dir: &str, version: i64) {
    sqlx::any::install_default_drivers();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut migrator = Migrator::new(path).await.unwrap();
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    assert_eq!(older.len(), usize::try_from(version).unwrap());
    migrator.migrations = older.into();
    let pool = AnyPool::connect(url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
}

/// Writes a saga as the build with migrations 1 to 5 did: its key unique on its own, its input
/// digest the input's text.
async fn write_old_saga(url: &str, saga_id: Uuid) {
    let pool = AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO sagas (saga_id, name, definition_version, status, version, idempotency_key, \
         input_digest, created_at, updated_at, due_at, deadline_at) \
         VALUES ($1, 'order', 1, 'running', 1, 'k', '{\"amount\":5}', 1000, 1000, 4000, 9000)",
    )
    .bind(saga_id.to_string())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO saga_events (saga_id, sequence, event_type, schema_version, payload, \
         occurred_at, recorded_at) VALUES ($1, 1, 'SagaStarted', 1, '{}', 1000, 1000)",
    )
    .bind(saga_id.to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

fn new_saga(name: &str) -> NewSaga {
    NewSaga {
        saga_id: Uuid::new_v4(),
        name: name.into(),
        definition_version: 1,
        idempotency_key: Some("k".into()),
        input_digest: "sha256:00".into(),
        tags: Vec::new(),
        deadline_at: None,
    }
}

fn started() -> Vec<NewEvent> {
    vec![NewEvent {
        event_type: "SagaStarted".into(),
        schema_version: 1,
        payload: serde_json::json!({}),
        occurred_at: Timestamp(2_000),
    }]
}

/// Given a database of migrations 1 to 5 with a saga holding key `k`, when the store opens it
/// (migration 6: keys scoped by saga name; 7: the feed), then the saga reads as it was
/// written, the key still names it for its own saga name, another saga name may use the key,
/// and its event has the feed's first position.
async fn keys_survive_their_scoping_by_saga_name(url: &str, dir: &str) {
    migrate_up_to(url, dir, 5).await;
    let old = Uuid::new_v4();
    write_old_saga(url, old).await;

    let store = SqlStore::open(url, 2).await.unwrap();
    let (record, events) = store.load(old).await.unwrap().unwrap();
    assert_eq!(
        (
            record.name.as_str(),
            record.status.as_str(),
            record.version,
            record.idempotency_key.as_deref(),
            record.input_digest.as_str(),
            record.created_at,
            record.deadline_at,
        ),
        (
            "order",
            "running",
            1,
            Some("k"),
            r#"{"amount":5}"#,
            Timestamp(1_000),
            Some(Timestamp(9_000))
        )
    );
    assert_eq!(events.len(), 1);
    let again = store
        .create(new_saga("order"), started(), "running", Timestamp(2_000))
        .await
        .unwrap();
    assert!(matches!(again, Created::Existing(r) if r.saga_id == old));
    let payment = new_saga("payment");
    let payment_id = payment.saga_id;
    let other = store
        .create(payment, started(), "running", Timestamp(2_000))
        .await
        .unwrap();
    assert_eq!(other, Created::New);
    // Migration 7 gave the old event its place in the feed; new events follow on it.
    let feed = store.feed(0, 10).await.unwrap();
    let places: Vec<(Uuid, u64)> = feed.iter().map(|e| (e.saga_id, e.position)).collect();
    assert_eq!(places, [(old, 1), (payment_id, 2)]);
    // The timer the old row had is still found.
    use saga_orchestrator::store::Schedule;
    let due = store.due(Timestamp(5_000), 10).await.unwrap();
    assert_eq!(due.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [old]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys_survive_their_scoping_by_saga_name() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("old.db").display());
    keys_survive_their_scoping_by_saga_name(&url, "migrations/sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys_survive_their_scoping_by_saga_name() {
    let (pg, url) = tokio::task::spawn_blocking(|| {
        let pg = saga_testkit::Postgres::start().unwrap();
        let url = pg.create_database("old").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    keys_survive_their_scoping_by_saga_name(&url, "migrations/postgres").await;
    drop(pg);
}
