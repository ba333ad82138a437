#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Snapshots through the runtime, on SQLite and PostgreSQL: with a snapshot every 2 events
//! and no hot state (every reply loads the saga), sagas run to the end on the snapshot and the
//! events after it, the state a decision starts from equals the fold of the whole log at every
//! step, a snapshot that cannot be used is passed over, and dropping them all changes nothing.

mod common;

use common::answer;
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::runtime::{Options, Orchestrator, Registry};
use saga_orchestrator::store::{Snapshots, SqlStore};
use saga_orchestrator::transport::MemoryTransport;
use serde_json::json;

async fn sagas_run_on_their_snapshots(url: &str) {
    let registry = Registry::load_dir(&saga_testkit::workspace_root().join("sagas")).unwrap();
    let options = Options {
        snapshot_every: 2,
        hot_sagas: 0,
        ..Options::default()
    };
    let store = SqlStore::open(url, 4).await.unwrap();
    let o = Orchestrator::new(
        store.clone(),
        MemoryTransport::new(SystemClock),
        registry,
        options,
    );
    let input = json!({"customer_id": "ada", "amount": 5});

    // Each step decided from the snapshot and the events after it, equal to the whole fold.
    let id = o
        .start("place_order", input.clone(), None)
        .await
        .unwrap()
        .saga_id;
    let mut snapshotted = 0;
    while answer(&o, id).await {
        let whole = o.load(id).await.unwrap().state;
        assert_eq!(o.decision_state(id).await.unwrap(), whole);
        let taken = store
            .snapshot(id)
            .await
            .unwrap()
            .expect("a snapshot every 2 events");
        assert!(
            taken.version >= 2 && taken.version <= whole.version,
            "{}",
            taken.version
        );
        snapshotted = snapshotted.max(taken.version);
    }
    let done = o.load(id).await.unwrap().state;
    assert_eq!(done.status.as_str(), "completed");
    assert!(
        snapshotted >= 4,
        "snapshots were taken as the log grew: {snapshotted}"
    );

    // The load starts from the snapshot: a coherent but doctored one shows through.
    let other = o.start("place_order", input, None).await.unwrap().saga_id;
    answer(&o, other).await;
    let mut taken = store.snapshot(other).await.unwrap().unwrap();
    let real = taken.clone();
    taken.state["state"]["input"]["customer_id"] = json!("doctored");
    store.drop_snapshots().await.unwrap();
    store.put_snapshot(taken.clone()).await.unwrap();
    assert_eq!(
        o.decision_state(other).await.unwrap().input["customer_id"],
        "doctored"
    );

    // One that cannot be used is passed over: another schema, a version it does not hold.
    let whole = o.load(other).await.unwrap().state;
    for unusable in [
        saga_orchestrator::store::Snapshot {
            schema_version: 999,
            ..taken.clone()
        },
        saga_orchestrator::store::Snapshot {
            version: taken.version + 100,
            ..taken.clone()
        },
    ] {
        store.drop_snapshots().await.unwrap();
        store.put_snapshot(unusable).await.unwrap();
        assert_eq!(o.decision_state(other).await.unwrap(), whole);
    }
    // With the real one, and with none, the saga goes on to the end.
    store.drop_snapshots().await.unwrap();
    store.put_snapshot(real).await.unwrap();
    answer(&o, other).await;
    assert!(store.drop_snapshots().await.unwrap() > 0);
    while answer(&o, other).await {
        assert_eq!(
            o.decision_state(other).await.unwrap(),
            o.load(other).await.unwrap().state
        );
    }
    assert_eq!(
        o.load(other).await.unwrap().state.status.as_str(),
        "completed"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sagas_run_on_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("events.db").display());
    sagas_run_on_their_snapshots(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sagas_run_on_their_snapshots() {
    let (pg, url) = saga_testkit::Postgres::with_database("events")
        .await
        .unwrap();
    sagas_run_on_their_snapshots(&url).await;
    drop(pg);
}
