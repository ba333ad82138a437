#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The event store's contract, one set of test bodies run against every implementation:
//! [`MemoryStore`], [`SqlStore`] on a SQLite file, and [`SqlStore`] on a throwaway PostgreSQL
//! cluster. Each body is generic over `S: EventStore`; the `contract!` macro at the end
//! instantiates it once per backend (`memory::…`, `sqlite::…`, `postgres::…`).

#[path = "store_contract/definitions.rs"]
mod definitions;
#[path = "store_contract/old_logs.rs"]
mod old_logs;

use definitions::{
    a_definition_is_stored_once_and_read_back, a_version_is_retired_only_without_sagas_in_flight,
    definitions_count_their_sagas_in_flight,
};
use old_logs::a_version_1_log_is_replayed_and_shown_in_the_newest_shape;
use saga_orchestrator::store::{
    Created, Cursor, Error, EventStore, MemoryStore, NewEvent, NewSaga, SagaQuery, SagaRecord,
    SqlStore, Summary,
};
use saga_protocol::Timestamp;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Barrier;
use uuid::Uuid;

fn event(event_type: &str, n: u64) -> NewEvent {
    NewEvent {
        event_type: event_type.to_string(),
        schema_version: 2,
        payload: json!({ "n": n, "nested": { "list": [1, "two", null], "unicode": "é✓" } }),
        occurred_at: Timestamp(500 + i64::try_from(n).unwrap()),
    }
}

fn saga(name: &str, key: Option<&str>, digest: &str) -> NewSaga {
    NewSaga {
        saga_id: Uuid::new_v4(),
        name: name.to_string(),
        definition_version: 3,
        idempotency_key: key.map(str::to_string),
        input_digest: digest.to_string(),
        tags: Vec::new(),
        deadline_at: None,
    }
}

/// Creates a saga with one event at `at`, returning its id.
async fn create_one<S: EventStore>(store: &S, status: &str, at: i64) -> Uuid {
    let new = saga("order", None, "d");
    let id = new.saga_id;
    let created = store
        .create(new, vec![event("SagaStarted", 0)], status, Timestamp(at))
        .await
        .unwrap();
    assert_eq!(created, Created::New);
    id
}

async fn create_then_load_round_trips<S: EventStore>(store: S) {
    let new = saga("order", Some("key-1"), "sha256:abc");
    let id = new.saga_id;
    let events: Vec<NewEvent> = (1..=3).map(|n| event(&format!("E{n}"), n)).collect();
    let created = store
        .create(new, events.clone(), "running", Timestamp(1_000))
        .await
        .unwrap();
    assert_eq!(created, Created::New);

    let (record, stored) = store.load(id).await.unwrap().expect("created saga loads");
    assert_eq!(
        record,
        SagaRecord {
            saga_id: id,
            name: "order".into(),
            definition_version: 3,
            status: "running".into(),
            version: 3,
            idempotency_key: Some("key-1".into()),
            input_digest: "sha256:abc".into(),
            created_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            deadline_at: None,
        }
    );
    assert_eq!(stored.len(), 3);
    for ((stored, new), sequence) in stored.iter().zip(&events).zip(1u64..) {
        assert_eq!(stored.saga_id, id);
        assert_eq!(stored.sequence, sequence);
        assert_eq!(stored.event_type, new.event_type);
        assert_eq!(stored.schema_version, new.schema_version);
        assert_eq!(stored.payload, new.payload);
        assert_eq!(stored.occurred_at, new.occurred_at);
        assert_eq!(stored.recorded_at, Timestamp(1_000));
    }
    assert!(
        stored
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position),
        "global positions increase: {stored:?}"
    );
}

async fn append_after_expected_version<S: EventStore>(store: S) {
    let id = create_one(&store, "running", 1_000).await;
    let (_, before) = store.load(id).await.unwrap().unwrap();

    let version = store
        .append(
            id,
            1,
            vec![event("A", 1), event("B", 2)],
            "compensating",
            Timestamp(2_000),
        )
        .await
        .unwrap();
    assert_eq!(version, 3);
    let version = store
        .append(id, 3, vec![event("C", 3)], "completed", Timestamp(3_000))
        .await
        .unwrap();
    assert_eq!(version, 4);

    let (record, events) = store.load(id).await.unwrap().unwrap();
    assert_eq!(record.version, 4);
    assert_eq!(record.status, "completed");
    assert_eq!(record.created_at, Timestamp(1_000));
    assert_eq!(record.updated_at, Timestamp(3_000));
    let summary: Vec<(u64, &str, Timestamp)> = events
        .iter()
        .map(|e| (e.sequence, e.event_type.as_str(), e.recorded_at))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "SagaStarted", Timestamp(1_000)),
            (2, "A", Timestamp(2_000)),
            (3, "B", Timestamp(2_000)),
            (4, "C", Timestamp(3_000)),
        ]
    );
    assert_eq!(events[0], before[0], "earlier events are never changed");
    assert!(
        events
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position)
    );
}

async fn racing_appends_exactly_one_wins<S: EventStore>(store: S) {
    let id = create_one(&store, "running", 1_000).await;
    let mut version = 1;
    let mut expected_tags = vec!["SagaStarted"];
    // Several rounds, so a lucky interleaving in one round cannot hide a broken guard.
    for round in 0..8u64 {
        let barrier = Arc::new(Barrier::new(2));
        let racer = |tag: &'static str| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let events = vec![event(tag, round), event(tag, round)];
            // Real tasks on a multi-threaded runtime, released together by the barrier.
            tokio::spawn(async move {
                barrier.wait().await;
                let result = store
                    .append(id, version, events, tag, Timestamp(2_000))
                    .await;
                (tag, result)
            })
        };
        let (left, right) = (racer("left"), racer("right"));
        let results = [left.await.unwrap(), right.await.unwrap()];

        let mut winners = Vec::new();
        for (tag, result) in &results {
            match result {
                Ok(new_version) => {
                    assert_eq!(*new_version, version + 2, "{tag}");
                    winners.push(*tag);
                }
                Err(Error::Conflict {
                    saga_id,
                    expected_version,
                }) => assert_eq!((*saga_id, *expected_version), (id, version), "{tag}"),
                Err(other) => panic!("round {round}: {tag} failed with {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = winners[0];
        version += 2;

        // The saga advanced by the winner's two events only; nothing of the loser is stored.
        let (record, events) = store.load(id).await.unwrap().unwrap();
        assert_eq!((record.version, record.status.as_str()), (version, winner));
        assert_eq!(events.len() as u64, version);
        expected_tags.extend([winner, winner]);
        let tags: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(tags, expected_tags, "round {round}");
    }
    // Over all rounds: exactly two events per round plus the first, numbered without gaps.
    let (_, events) = store.load(id).await.unwrap().unwrap();
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=17).collect::<Vec<u64>>());
}

async fn stale_or_unknown_append_is_refused<S: EventStore>(store: S) {
    let id = create_one(&store, "running", 1_000).await;
    store
        .append(id, 1, vec![event("A", 1)], "running", Timestamp(2_000))
        .await
        .unwrap();
    let before = store.load(id).await.unwrap().unwrap();

    for (expected, what) in [(1, "stale"), (0, "from scratch"), (5, "ahead")] {
        let result = store
            .append(
                id,
                expected,
                vec![event("X", 9)],
                "broken",
                Timestamp(3_000),
            )
            .await;
        assert!(
            matches!(
                result,
                Err(Error::Conflict { saga_id, expected_version })
                    if saga_id == id && expected_version == expected
            ),
            "{what}: {result:?}"
        );
        assert!(!result.unwrap_err().is_transient());
    }
    // An empty append only checks the version.
    assert_eq!(
        store
            .append(id, 2, vec![], "broken", Timestamp(3_000))
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store
            .append(id, 1, vec![], "broken", Timestamp(3_000))
            .await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store.load(id).await.unwrap().unwrap(),
        before,
        "nothing written"
    );

    let unknown = Uuid::new_v4();
    assert!(matches!(
        store
            .append(unknown, 0, vec![event("X", 1)], "running", Timestamp(3_000))
            .await,
        Err(Error::NotFound(u)) if u == unknown
    ));
    assert!(store.load(unknown).await.unwrap().is_none());
}

/// Many writes at once (which a store may commit together) each get the outcome they would
/// get alone: good appends and creates land, stale appends, unknown sagas and used keys are
/// refused and write nothing, whatever else shares their moment.
async fn concurrent_writes_keep_their_own_outcomes<S: EventStore>(store: S) {
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

async fn idempotency_key_returns_existing<S: EventStore>(store: S) {
    let first = saga("order", Some("client-key"), "digest-1");
    let first_id = first.saga_id;
    store
        .create(
            first,
            vec![event("SagaStarted", 1)],
            "running",
            Timestamp(1_000),
        )
        .await
        .unwrap();
    store
        .append(
            first_id,
            1,
            vec![event("A", 2)],
            "compensating",
            Timestamp(1_500),
        )
        .await
        .unwrap();
    let (original, _) = store.load(first_id).await.unwrap().unwrap();

    // Same name and key, another saga id and another input: nothing is created, the original
    // is returned.
    let retry = saga("order", Some("client-key"), "digest-2");
    let retry_id = retry.saga_id;
    let created = store
        .create(
            retry,
            vec![event("SagaStarted", 3)],
            "running",
            Timestamp(2_000),
        )
        .await
        .unwrap();
    assert_eq!(created, Created::Existing(original.clone()));
    assert!(store.load(retry_id).await.unwrap().is_none());
    assert_eq!(store.load(first_id).await.unwrap().unwrap().0, original);
    assert_eq!(store.list(10).await.unwrap(), vec![original.clone()]);

    // Reusing a saga id without the key is a conflict at version 0, and writes nothing.
    let mut same_id = saga("order", None, "digest-3");
    same_id.saga_id = first_id;
    let result = store
        .create(
            same_id,
            vec![event("SagaStarted", 4)],
            "running",
            Timestamp(3_000),
        )
        .await;
    assert!(
        matches!(
            result,
            Err(Error::Conflict { saga_id, expected_version: 0 }) if saga_id == first_id
        ),
        "{result:?}"
    );
    assert_eq!(store.load(first_id).await.unwrap().unwrap().1.len(), 2);

    // Sagas without a key never collide with each other.
    create_one(&store, "running", 4_000).await;
    create_one(&store, "running", 4_001).await;
    assert_eq!(store.list(10).await.unwrap().len(), 3);
}

async fn an_idempotency_key_is_scoped_by_saga_name_and_released_after_its_window<S: EventStore>(
    store: S,
) {
    let create = |name: &str, at: i64| {
        let new = saga(name, Some("k"), "digest");
        let id = new.saga_id;
        let store = store.clone();
        async move {
            let created = store
                .create(new, vec![event("SagaStarted", 1)], "running", Timestamp(at))
                .await
                .unwrap();
            (id, created)
        }
    };
    // One saga of each name may hold the key.
    let (order, created) = create("order", 1_000).await;
    assert_eq!(created, Created::New);
    let (payment, created) = create("payment", 1_001).await;
    assert_eq!(created, Created::New);
    let (_, created) = create("order", 1_002).await;
    let Created::Existing(record) = created else {
        panic!("the key names the order saga: {created:?}");
    };
    assert_eq!(record.saga_id, order);

    // Released, the key names no saga of that name: the next start with it is new.
    store.release_key(order).await.unwrap();
    let (record, events) = store.load(order).await.unwrap().unwrap();
    assert_eq!((record.idempotency_key, events.len()), (None, 1));
    let (again, created) = create("order", 1_003).await;
    assert_eq!(created, Created::New);
    assert_ne!(again, order);
    let (_, created) = create("order", 1_004).await;
    assert!(matches!(created, Created::Existing(r) if r.saga_id == again));
    // The other name's saga keeps its key; releasing an unknown saga changes nothing.
    let (record, _) = store.load(payment).await.unwrap().unwrap();
    assert_eq!(record.idempotency_key.as_deref(), Some("k"));
    store.release_key(Uuid::new_v4()).await.unwrap();
}

async fn sagas_started_are_counted_per_bucket_by_creation_time<S: EventStore>(store: S) {
    // Buckets of 1 s from 10 s: [10, 11), [11, 12), [12, 13).
    for at in [9_999, 10_000, 10_999, 11_000, 12_999, 13_000] {
        create_one(&store, "running", at).await;
    }
    let counts = store
        .started_per_bucket(Timestamp(10_000), std::time::Duration::from_secs(1), 3)
        .await
        .unwrap();
    assert_eq!(counts, [2, 1, 1]);
    let none = store
        .started_per_bucket(Timestamp(20_000), std::time::Duration::from_secs(1), 2)
        .await
        .unwrap();
    assert_eq!(none, [0, 0]);
}

async fn with_status_filters_and_orders_oldest_first<S: EventStore>(store: S) {
    let c = create_one(&store, "running", 30).await;
    let a = create_one(&store, "compensating", 10).await;
    let b = create_one(&store, "completed", 20).await;
    let d = create_one(&store, "running", 40).await;

    let in_flight = ["running", "compensating"];
    assert_eq!(store.with_status(&in_flight).await.unwrap(), [a, c, d]);
    assert_eq!(store.with_status(&["completed"]).await.unwrap(), [b]);
    assert!(store.with_status(&["stuck"]).await.unwrap().is_empty());
    assert!(store.with_status(&[]).await.unwrap().is_empty());

    // The filter follows the status of the last append; the order stays by creation.
    store
        .append(c, 1, vec![event("Done", 1)], "completed", Timestamp(50))
        .await
        .unwrap();
    assert_eq!(store.with_status(&in_flight).await.unwrap(), [a, d]);
    assert_eq!(store.with_status(&["completed"]).await.unwrap(), [b, c]);
}

async fn list_is_newest_first_and_limited<S: EventStore>(store: S) {
    let mut ids = Vec::new();
    for at in [300, 100, 500, 200, 400] {
        ids.push((at, create_one(&store, "running", at).await));
    }
    ids.sort_by_key(|(at, _)| std::cmp::Reverse(*at));

    let listed = store.list(3).await.unwrap();
    let listed_ids: Vec<Uuid> = listed.iter().map(|r| r.saga_id).collect();
    let newest: Vec<Uuid> = ids.iter().take(3).map(|(_, id)| *id).collect();
    assert_eq!(listed_ids, newest);
    for record in &listed {
        assert_eq!(
            *record,
            store.load(record.saga_id).await.unwrap().unwrap().0,
            "list returns the full read-model record"
        );
    }
    assert_eq!(store.list(100).await.unwrap().len(), 5);
    assert!(store.list(0).await.unwrap().is_empty());
}

async fn load_of_unknown_is_none<S: EventStore>(store: S) {
    assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
    create_one(&store, "running", 1).await;
    assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
}

async fn large_batches_keep_order<S: EventStore>(store: S) {
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
}

/// Creates a saga for the search test: `name` version `version`, `status`, created at `at`,
/// with the input field `customer_id`.
async fn create_tagged<S: EventStore>(
    store: &S,
    name: &str,
    version: u32,
    status: &str,
    at: i64,
    customer: &str,
) -> Uuid {
    let mut new = saga(name, None, "d");
    new.definition_version = version;
    new.tags = saga_orchestrator::store::input_tags(&json!({
        "customer_id": customer, "amount": at, "note": { "not": "searchable" }
    }));
    let id = new.saga_id;
    store
        .create(new, vec![event("SagaStarted", 0)], status, Timestamp(at))
        .await
        .unwrap();
    id
}

fn ids(records: &[SagaRecord]) -> Vec<Uuid> {
    records.iter().map(|r| r.saga_id).collect()
}

async fn search_filters_and_pages_newest_first<S: EventStore>(store: S) {
    let a = create_tagged(&store, "order", 1, "completed", 100, "alice").await;
    let b = create_tagged(&store, "order", 2, "compensated", 200, "bob").await;
    let c = create_tagged(&store, "refund", 1, "compensated", 300, "alice").await;
    let d = create_tagged(&store, "order", 2, "running", 400, "alice").await;
    let e = create_tagged(&store, "order", 2, "compensated", 400, "alice").await;
    // d and e share created_at: the id breaks the tie, descending.
    let (d, e) = if d > e { (d, e) } else { (e, d) };
    let q = |f: &dyn Fn(&mut SagaQuery)| {
        let mut q = SagaQuery {
            limit: 100,
            ..SagaQuery::default()
        };
        f(&mut q);
        q
    };

    let all = store.search(&q(&|_| {})).await.unwrap();
    assert_eq!(ids(&all), [d, e, c, b, a]);
    for record in &all {
        assert_eq!(
            *record,
            store.load(record.saga_id).await.unwrap().unwrap().0
        );
    }
    let by_status = q(&|q| q.statuses = vec!["compensated".into()]);
    let compensated = store.search(&by_status).await.unwrap();
    let mut expected = vec![c, b];
    expected.insert(0, if all[0].status == "compensated" { d } else { e });
    assert_eq!(ids(&compensated), expected);
    let two = q(&|q| q.statuses = vec!["completed".into(), "running".into()]);
    assert_eq!(store.search(&two).await.unwrap().len(), 2);

    let by_name = q(&|q| q.name = Some("refund".into()));
    assert_eq!(ids(&store.search(&by_name).await.unwrap()), [c]);
    let v1 = q(&|q| {
        q.name = Some("order".into());
        q.definition_version = Some(1);
    });
    assert_eq!(ids(&store.search(&v1).await.unwrap()), [a]);
    let window = q(&|q| {
        q.created_from = Some(Timestamp(200));
        q.created_until = Some(Timestamp(400));
    });
    assert_eq!(ids(&store.search(&window).await.unwrap()), [c, b]);

    let alice = q(&|q| q.tag = Some(("customer_id".into(), "alice".into())));
    assert_eq!(ids(&store.search(&alice).await.unwrap()), [d, e, c, a]);
    let amount = q(&|q| q.tag = Some(("amount".into(), "200".into())));
    assert_eq!(ids(&store.search(&amount).await.unwrap()), [b]);
    let nested = q(&|q| q.tag = Some(("note".into(), "{\"not\":\"searchable\"}".into())));
    assert!(store.search(&nested).await.unwrap().is_empty());
    let alice_compensated_early = q(&|q| {
        q.tag = Some(("customer_id".into(), "alice".into()));
        q.statuses = vec!["compensated".into(), "completed".into()];
        q.created_until = Some(Timestamp(400));
    });
    assert_eq!(
        ids(&store.search(&alice_compensated_early).await.unwrap()),
        [c, a]
    );

    // Pages of two, with and without a tag, cover everything once, in order.
    for tag in [None, Some(("customer_id".to_string(), "alice".to_string()))] {
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = store
                .search(&q(&|q| {
                    q.limit = 2;
                    q.after = after;
                    q.tag = tag.clone();
                }))
                .await
                .unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(Cursor::after(last));
            seen.extend(ids(&page));
        }
        let expected = if tag.is_some() {
            vec![d, e, c, a]
        } else {
            vec![d, e, c, b, a]
        };
        assert_eq!(seen, expected);
    }
    let cursor: Cursor = Cursor::after(&all[1]).to_string().parse().unwrap();
    assert_eq!(cursor, Cursor::after(&all[1]));
    assert!(store.search(&q(&|q| q.limit = 0)).await.unwrap().is_empty());

    let counts = store.status_counts().await.unwrap();
    let counts: Vec<(&str, u64)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(
        counts,
        [("compensated", 3), ("completed", 1), ("running", 1)]
    );
}

/// Instantiates every contract body once per implementation. Tests run on a multi-threaded
/// runtime so the racing appends really run in parallel.
fn due_at(status: &str, at: Option<i64>) -> Summary {
    Summary {
        status: status.to_string(),
        due_at: at.map(Timestamp),
    }
}

async fn due_lists_the_timers_that_fall_due<S: EventStore>(store: S) {
    // Given three sagas: one due at 2,000, one at 1,000, one without a timer.
    let (later, sooner, none) = (
        saga("order", None, "d"),
        saga("order", None, "d"),
        saga("order", None, "d"),
    );
    let (later_id, sooner_id) = (later.saga_id, sooner.saga_id);
    for (new, at) in [(later, Some(2_000)), (sooner, Some(1_000)), (none, None)] {
        let created = store
            .create(
                new,
                vec![event("SagaStarted", 0)],
                due_at("running", at),
                Timestamp(10),
            )
            .await
            .unwrap();
        assert_eq!(created, Created::New);
    }
    // Then each shows up once its time has come, earliest first, within the limit.
    assert_eq!(store.due(Timestamp(999), 10).await.unwrap(), []);
    assert_eq!(
        store.due(Timestamp(1_500), 10).await.unwrap(),
        [(sooner_id, Timestamp(1_000))]
    );
    assert_eq!(
        store.due(Timestamp(5_000), 10).await.unwrap(),
        [(sooner_id, Timestamp(1_000)), (later_id, Timestamp(2_000))]
    );
    assert_eq!(store.due(Timestamp(5_000), 1).await.unwrap().len(), 1);

    // When appends, committed together, clear one timer and move the other.
    let (cleared, moved) = tokio::join!(
        store.append(
            sooner_id,
            1,
            vec![event("StepCompleted", 1)],
            due_at("completed", None),
            Timestamp(20)
        ),
        store.append(
            later_id,
            1,
            vec![event("StepRequested", 1)],
            due_at("running", Some(500)),
            Timestamp(20)
        ),
    );
    assert_eq!((cleared.unwrap(), moved.unwrap()), (2, 2));
    // Then the read model follows the last append of each saga.
    assert_eq!(
        store.due(Timestamp(5_000), 10).await.unwrap(),
        [(later_id, Timestamp(500))]
    );
    // And a refused append changes nothing.
    let stale = store
        .append(
            later_id,
            1,
            vec![event("Late", 2)],
            due_at("running", Some(1)),
            Timestamp(30),
        )
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    assert_eq!(
        store.due(Timestamp(5_000), 10).await.unwrap(),
        [(later_id, Timestamp(500))]
    );
}

/// Creates a saga in `status` at `at`, due by `deadline_at`.
async fn create_due<S: EventStore>(
    store: &S,
    status: &str,
    at: i64,
    deadline_at: Option<i64>,
) -> Uuid {
    let mut new = saga("order", None, "d");
    new.deadline_at = deadline_at.map(Timestamp);
    let id = new.saga_id;
    store
        .create(new, vec![event("SagaStarted", 0)], status, Timestamp(at))
        .await
        .unwrap();
    id
}

async fn overdue_sagas_are_found_by_their_deadline_or_start<S: EventStore>(store: S) {
    // A deadline is kept with the saga and read back.
    let late = create_due(&store, "running", 100, Some(1_000)).await;
    let (record, _) = store.load(late).await.unwrap().unwrap();
    assert_eq!(record.deadline_at, Some(Timestamp(1_000)));
    let early_start = create_due(&store, "compensating", 200, None).await;
    let not_yet = create_due(&store, "running", 300, Some(5_000)).await;
    let ended = create_due(&store, "completed", 100, Some(1_000)).await;
    let recent_start = create_due(&store, "running", 4_000, None).await;
    let active = ["running", "compensating"];

    // At 2_000: `late` is past its deadline, `early_start` (no deadline) past its start;
    // `not_yet` has a deadline ahead even though it started long ago; `ended` is not active.
    let query = SagaQuery {
        statuses: active.iter().map(|s| s.to_string()).collect(),
        overdue_before: Some(Timestamp(2_000)),
        limit: 100,
        ..SagaQuery::default()
    };
    let mut found = ids(&store.search(&query).await.unwrap());
    found.sort();
    let mut expected = vec![late, early_start];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        store
            .count_overdue(&active, Timestamp(2_000))
            .await
            .unwrap(),
        2
    );
    // Later, every active saga is overdue; the completed one never is.
    assert_eq!(
        store
            .count_overdue(&active, Timestamp(6_000))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .count_overdue(&["completed"], Timestamp(6_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count_overdue(&[], Timestamp(6_000)).await.unwrap(), 0);
    let _ = (not_yet, ended, recent_start);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(MemoryStore::new()).await;
                }
            )*
        }

        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite:{}", dir.path().join("events.db").display());
                    let store = SqlStore::open(&url, 4).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    // Blocking process management; kept off the runtime's worker threads.
                    let (pg, url) = tokio::task::spawn_blocking(|| {
                        let pg = saga_testkit::Postgres::start().unwrap();
                        let url = pg.create_database("events").unwrap();
                        (pg, url)
                    })
                    .await
                    .unwrap();
                    let store = SqlStore::open(&url, 4).await.unwrap();
                    super::$name(store).await;
                    drop(pg);
                }
            )*
        }
    };
}

contract!(
    create_then_load_round_trips,
    append_after_expected_version,
    racing_appends_exactly_one_wins,
    concurrent_writes_keep_their_own_outcomes,
    stale_or_unknown_append_is_refused,
    idempotency_key_returns_existing,
    an_idempotency_key_is_scoped_by_saga_name_and_released_after_its_window,
    sagas_started_are_counted_per_bucket_by_creation_time,
    with_status_filters_and_orders_oldest_first,
    list_is_newest_first_and_limited,
    load_of_unknown_is_none,
    large_batches_keep_order,
    search_filters_and_pages_newest_first,
    due_lists_the_timers_that_fall_due,
    overdue_sagas_are_found_by_their_deadline_or_start,
    a_definition_is_stored_once_and_read_back,
    definitions_count_their_sagas_in_flight,
    a_version_is_retired_only_without_sagas_in_flight,
    a_version_1_log_is_replayed_and_shown_in_the_newest_shape,
);
