//! Writes many at a time: many writes at once, each with its own outcome, and writes of more
//! events than one statement carries.

use super::*;

/// Many writes at once (which a store may commit together) each get the outcome they would
/// get alone: good appends and creates land, stale appends, unknown sagas and used keys are
/// refused and write nothing, whatever else shares their moment.
pub async fn concurrent_writes_keep_their_own_outcomes<S: EventStore>(store: S) {
    let keyed = saga("order", Some("taken-key"), "digest-k");
    let keyed_id = keyed.saga_id;
    store
        .create(
            keyed,
            vec![event("SagaStarted", 0)],
            "running",
            Timestamp(1),
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(create_one(&store, "running", 10 + n).await);
    }

    #[derive(Debug)]
    enum Outcome {
        Appended(Result<u64, Error>),
        Stale(Uuid, Result<u64, Error>),
        Unknown(Result<u64, Error>),
        Created(Uuid, Result<Created, Error>),
        KeyReused(Uuid, Result<Created, Error>),
    }
    let writes = 40 * 2 + 3 * 10;
    let barrier = Arc::new(Barrier::new(writes));
    let mut tasks = tokio::task::JoinSet::new();
    for &id in &ids {
        for stale in [false, true] {
            let (store, barrier) = (store.clone(), barrier.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                let expected = if stale { 0 } else { 1 };
                let events = vec![event("Next", 1), event("Next", 2)];
                let r = store
                    .append(id, expected, events, "compensating", Timestamp(100))
                    .await;
                if stale {
                    Outcome::Stale(id, r)
                } else {
                    Outcome::Appended(r)
                }
            });
        }
    }
    for _ in 0..10 {
        let (s, b) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            let r = s
                .append(
                    Uuid::new_v4(),
                    1,
                    vec![event("Next", 1)],
                    "x",
                    Timestamp(100),
                )
                .await;
            Outcome::Unknown(r)
        });
        let (s, b) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            let new = saga("order", None, "d");
            let id = new.saga_id;
            let r = s
                .create(
                    new,
                    vec![event("SagaStarted", 0)],
                    "running",
                    Timestamp(100),
                )
                .await;
            Outcome::Created(id, r)
        });
        let (s, b) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            let new = saga("order", Some("taken-key"), "digest-other");
            let id = new.saga_id;
            let r = s
                .create(
                    new,
                    vec![event("SagaStarted", 0)],
                    "running",
                    Timestamp(100),
                )
                .await;
            Outcome::KeyReused(id, r)
        });
    }

    let mut created = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Outcome::Appended(r) => assert_eq!(r.unwrap(), 3),
            Outcome::Stale(id, r) => assert!(
                matches!(r, Err(Error::Conflict { saga_id, expected_version: 0 }) if saga_id == id),
                "{r:?}"
            ),
            Outcome::Unknown(r) => assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}"),
            Outcome::Created(id, r) => {
                assert_eq!(r.unwrap(), Created::New);
                created.push(id);
            }
            Outcome::KeyReused(id, r) => {
                assert!(
                    matches!(&r, Ok(Created::Existing(record)) if record.saga_id == keyed_id),
                    "{r:?}"
                );
                assert!(store.load(id).await.unwrap().is_none());
            }
        }
    }
    // Exactly the good writes are stored: two events on each saga, the new sagas whole.
    for id in ids {
        let (record, events) = store.load(id).await.unwrap().unwrap();
        assert_eq!(
            (record.version, record.status.as_str()),
            (3, "compensating")
        );
        let tags: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(tags, ["SagaStarted", "Next", "Next"]);
    }
    assert_eq!(created.len(), 10);
    for id in created {
        let (record, events) = store.load(id).await.unwrap().unwrap();
        assert_eq!((record.version, events.len()), (1, 1));
    }
    assert_eq!(store.list(100).await.unwrap().len(), 1 + 40 + 10);
}

pub async fn large_batches_keep_order<S: EventStore>(store: S) {
    // More events than one INSERT statement carries, in create and in append.
    let new = saga("bulk", None, "d");
    let id = new.saga_id;
    let first: Vec<NewEvent> = (1..=700).map(|n| event("Bulk", n)).collect();
    store
        .create(new, first, "running", Timestamp(1))
        .await
        .unwrap();
    let more: Vec<NewEvent> = (701..=1_801).map(|n| event("Bulk", n)).collect();
    assert_eq!(
        store
            .append(id, 700, more, "running", Timestamp(2))
            .await
            .unwrap(),
        1_801
    );
    let (record, events) = store.load(id).await.unwrap().unwrap();
    assert_eq!(record.version, 1_801);
    for (event, n) in events.iter().zip(1u64..) {
        assert_eq!(event.sequence, n);
        assert_eq!(event.payload["n"], json!(n), "payload of sequence {n}");
    }
    assert!(
        events
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position)
    );
    // Each event has the feed position after the one before, however many share a write.
    assert!(
        events
            .windows(2)
            .all(|w| w[1].position == w[0].position + 1)
    );
}
