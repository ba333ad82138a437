//! The archive: finished sagas old enough are moved whole, still readable and still in the
//! feed; nothing in flight, nothing too recent and nothing appended meanwhile is moved.

use super::*;
use saga_orchestrator::store::{Retire, Snapshot};

const FINAL: [&str; 3] = ["completed", "compensated", "aborted"];

fn retire(ended_before: i64, created_before: i64, limit: u32) -> Retire<'static> {
    Retire {
        statuses: &FINAL,
        ended_before: Timestamp(ended_before),
        created_before: Timestamp(created_before),
        limit,
    }
}

/// A saga created at `created`, with a key and tags, whose last event (of three) is recorded
/// at `ended` with `status`.
async fn finished<S: EventStore>(store: &S, status: &str, created: i64, ended: i64) -> Uuid {
    let mut new = saga("order", Some(&format!("key-{created}-{status}")), "d");
    new.tags = vec![("customer_id".into(), format!("c-{created}"))];
    let id = new.saga_id;
    store
        .create(
            new,
            vec![event("SagaStarted", 0)],
            "running",
            Timestamp(created),
        )
        .await
        .unwrap();
    let more = vec![event("StepCompleted", 1), event("SagaEnded", 2)];
    store
        .append(id, 1, more, status, Timestamp(ended))
        .await
        .unwrap();
    id
}

pub async fn finished_sagas_are_archived_whole_and_nothing_in_flight_is_touched<S: EventStore>(
    store: S,
) {
    // Old enough: final, ended before 1_000 and created before 900.
    let completed = finished(&store, "completed", 100, 500).await;
    let compensated = finished(&store, "compensated", 110, 600).await;
    let aborted = finished(&store, "aborted", 120, 700).await;
    // Never moved, however old: they are in flight, or wait for an operator.
    let running = finished(&store, "running", 130, 500).await;
    let compensating = finished(&store, "compensating", 140, 500).await;
    let stuck = finished(&store, "stuck", 150, 500).await;
    // Final, but not old enough: ended too recently, or its key is still in its window.
    let recent = finished(&store, "completed", 160, 1_000).await;
    let keyed = finished(&store, "completed", 900, 950).await;
    store
        .put_snapshot(Snapshot {
            saga_id: completed,
            version: 2,
            schema_version: 1,
            definition_hash: None,
            state: json!({}),
            taken_at: Timestamp(500),
        })
        .await
        .unwrap();
    let everyone = [
        completed,
        compensated,
        aborted,
        running,
        compensating,
        stuck,
        recent,
        keyed,
    ];
    let mut before = std::collections::HashMap::new();
    for id in everyone {
        before.insert(id, store.load(id).await.unwrap().unwrap());
    }
    let feed_before = store.feed(0, 1_000).await.unwrap();
    let head = store.feed_head().await.unwrap();

    // A limit takes the oldest first.
    let first = store
        .archive(&retire(1_000, 900, 1), Timestamp(2_000))
        .await
        .unwrap();
    assert_eq!(first, [completed]);
    let rest = store
        .archive(&retire(1_000, 900, 100), Timestamp(2_001))
        .await
        .unwrap();
    assert_eq!(rest, [compensated, aborted], "oldest first, by creation");
    assert!(
        store
            .archive(&retire(1_000, 900, 100), Timestamp(2_002))
            .await
            .unwrap()
            .is_empty(),
        "a second sweep finds nothing more"
    );
    assert_eq!(store.archived_count().await.unwrap(), 3);

    // The archived: gone from the hot tables, whole in the archive.
    for (id, at) in [(completed, 2_000), (compensated, 2_001), (aborted, 2_001)] {
        assert!(store.load(id).await.unwrap().is_none(), "{id} left the log");
        let archived = store.archived(id).await.unwrap().expect("archived");
        let (record, events) = &before[&id];
        assert_eq!(&archived.record, record);
        assert_eq!(&archived.events, events);
        assert_eq!(
            archived.tags,
            [("customer_id".into(), record_customer(record))]
        );
        assert_eq!(archived.archived_at, Timestamp(at));
    }
    assert_eq!(store.snapshot(completed).await.unwrap(), None);
    // The rest: exactly as they were.
    for id in [running, compensating, stuck, recent, keyed] {
        assert_eq!(store.load(id).await.unwrap().as_ref(), Some(&before[&id]));
        assert_eq!(store.archived(id).await.unwrap(), None);
    }
    let listed: Vec<Uuid> = store
        .list(100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.saga_id)
        .collect();
    assert_eq!(listed.len(), 5);
    assert!(!listed.contains(&completed));
    let by_tag = SagaQuery {
        tag: Some(("customer_id".into(), "c-100".into())),
        ..SagaQuery::default()
    };
    assert!(store.search(&by_tag).await.unwrap().is_empty());

    // The feed is the same events in the same order, and the head has not moved.
    assert_eq!(store.feed(0, 1_000).await.unwrap(), feed_before);
    let paged = feed_in_pages(&store, 4).await;
    assert_eq!(paged, feed_before);
    assert_eq!(store.feed_head().await.unwrap(), head);

    // Its key names it no more: the same key starts a new saga.
    let mut again = saga("order", Some("key-100-completed"), "d");
    again.saga_id = Uuid::new_v4();
    let created = store
        .create(
            again,
            vec![event("SagaStarted", 0)],
            "running",
            Timestamp(3_000),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::New);
    // Unknown ids are simply not archived.
    assert_eq!(store.archived(Uuid::new_v4()).await.unwrap(), None);
}

/// The customer tag `finished` gave the saga created at `record.created_at`.
fn record_customer(record: &SagaRecord) -> String {
    format!("c-{}", record.created_at.millis())
}

pub async fn an_append_racing_the_archive_either_keeps_the_saga_or_loses_to_it<S: EventStore>(
    store: S,
) {
    for round in 0..20 {
        let id = finished(&store, "completed", 100 + round, 500).await;
        let (_, log) = store.load(id).await.unwrap().unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let (a, b) = (store.clone(), store.clone());
        let (ba, bb) = (barrier.clone(), barrier.clone());
        // A late signal recorded on the finished saga, at the same time as a sweep.
        let append = tokio::spawn(async move {
            ba.wait().await;
            a.append(
                id,
                3,
                vec![event("SignalIgnored", 3)],
                "completed",
                Timestamp(5_000),
            )
            .await
        });
        let sweep = tokio::spawn(async move {
            bb.wait().await;
            b.archive(&retire(1_000, 900, 10), Timestamp(6_000)).await
        });
        let appended = append.await.unwrap();
        let moved = sweep.await.unwrap().unwrap();
        match appended {
            Ok(4) => {
                assert!(moved.is_empty(), "round {round}: appended to, then moved");
                assert_eq!(store.load(id).await.unwrap().unwrap().1.len(), 4);
                assert_eq!(store.archived(id).await.unwrap(), None);
            }
            Err(Error::NotFound(_) | Error::Conflict { .. }) => {
                assert_eq!(moved, [id], "round {round}");
                assert!(store.load(id).await.unwrap().is_none());
                assert_eq!(store.archived(id).await.unwrap().unwrap().events, log);
            }
            other => panic!("round {round}: {other:?}"),
        }
        // Whatever won, every event is in the feed once.
        let feed = store.feed(0, 10_000).await.unwrap();
        let positions: Vec<u64> = feed.iter().map(|e| e.position).collect();
        let expected: Vec<u64> = (1..=store.feed_head().await.unwrap()).collect();
        assert_eq!(positions, expected, "round {round}");
        // Leave nothing for the next round's sweep.
        store
            .archive(&retire(i64::MAX, i64::MAX, 10), Timestamp(7_000))
            .await
            .unwrap();
    }
}

pub async fn two_sweeps_at_once_move_each_saga_once<S: EventStore>(store: S) {
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(finished(&store, "completed", 100 + n, 500).await);
    }
    let barrier = Arc::new(Barrier::new(2));
    let sweeps: Vec<_> = (0..2)
        .map(|n| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut moved = Vec::new();
                loop {
                    let page = store
                        .archive(&retire(1_000, 900, 4), Timestamp(2_000 + n))
                        .await
                        .unwrap();
                    if page.is_empty() {
                        return moved;
                    }
                    moved.extend(page);
                }
            })
        })
        .collect();
    let mut moved = Vec::new();
    for sweep in sweeps {
        moved.extend(sweep.await.unwrap());
    }
    moved.sort();
    ids.sort();
    assert_eq!(moved, ids, "every saga moved, none twice");
    assert_eq!(store.archived_count().await.unwrap(), 30);
    assert!(store.list(100).await.unwrap().is_empty());
}
