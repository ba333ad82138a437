//! Snapshots: one per saga, never replaced by an older one, dropped at will; and the log read
//! after a snapshot's version.

use super::*;
use saga_orchestrator::store::Snapshot;

fn taken(saga_id: Uuid, version: u64) -> Snapshot {
    Snapshot {
        saga_id,
        version,
        schema_version: 1,
        definition_hash: Some("ab12".into()),
        state: json!({ "state": { "version": version }, "was_stuck": false }),
        taken_at: Timestamp(5_000),
    }
}

pub async fn a_saga_keeps_its_latest_snapshot_and_the_log_after_it_is_read<S: EventStore>(
    store: S,
) {
    let id = create_one(&store, "running", 1).await;
    let more: Vec<NewEvent> = (1..=4).map(|n| event("E", n)).collect();
    store
        .append(id, 1, more, "running", Timestamp(2))
        .await
        .unwrap();
    assert_eq!(store.snapshot(id).await.unwrap(), None);

    store.put_snapshot(taken(id, 3)).await.unwrap();
    // An older snapshot (a slow writer, another replica) does not replace it.
    store.put_snapshot(taken(id, 2)).await.unwrap();
    assert_eq!(store.snapshot(id).await.unwrap(), Some(taken(id, 3)));
    store.put_snapshot(taken(id, 4)).await.unwrap();
    assert_eq!(store.snapshot(id).await.unwrap(), Some(taken(id, 4)));

    // The log after it: the record and the events after version 4, as load reads them.
    let (record, tail) = store.load_after(id, 4).await.unwrap().unwrap();
    let (whole_record, whole) = store.load(id).await.unwrap().unwrap();
    assert_eq!(record, whole_record);
    assert_eq!(tail, whole[4..]);
    assert!(store.load_after(id, 5).await.unwrap().unwrap().1.is_empty());
    assert!(store.load_after(Uuid::new_v4(), 0).await.unwrap().is_none());

    // A cache: dropping them all leaves the log as it was.
    assert_eq!(store.drop_snapshots().await.unwrap(), 1);
    assert_eq!(store.snapshot(id).await.unwrap(), None);
    assert_eq!(store.load(id).await.unwrap().unwrap().1, whole);
}
