#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The event store's contract, one set of test bodies run against every implementation:
//! [`MemoryStore`], [`SqlStore`] on a SQLite file, and [`SqlStore`] on a throwaway PostgreSQL
//! cluster. Each body is generic over `S: EventStore`; the `contract!` macro at the end
//! instantiates it once per backend (`memory::…`, `sqlite::…`, `postgres::…`).

#[path = "store_contract/batches.rs"]
mod batches;
#[path = "store_contract/definitions.rs"]
mod definitions;
#[path = "store_contract/feed.rs"]
mod feed;
#[path = "store_contract/idempotency.rs"]
mod idempotency;
#[path = "store_contract/old_logs.rs"]
mod old_logs;
#[path = "store_contract/projection.rs"]
mod projection;
#[path = "store_contract/read_model.rs"]
mod read_model;
#[path = "store_contract/retention.rs"]
mod retention;
#[path = "store_contract/schedule.rs"]
mod schedule;
#[path = "store_contract/snapshots.rs"]
mod snapshots;

use batches::{concurrent_writes_keep_their_own_outcomes, large_batches_keep_order};
use definitions::{
    a_definition_is_stored_once_and_read_back, a_version_is_retired_only_without_sagas_in_flight,
    definitions_count_their_sagas_in_flight,
};
use feed::*;
use idempotency::*;
use old_logs::a_version_1_log_is_replayed_and_shown_in_the_newest_shape;
use projection::*;
use read_model::*;
use retention::*;
use saga_orchestrator::store::{
    Created, Cursor, Error, EventStore, MemoryStore, NewEvent, NewSaga, SagaQuery, SagaRecord,
    SqlStore, Summary,
};
use saga_protocol::Timestamp;
use schedule::*;
use serde_json::json;
use snapshots::*;
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

/// The whole feed, read `page` events at a time.
async fn feed_in_pages<S: EventStore>(
    store: &S,
    page: u32,
) -> Vec<saga_orchestrator::store::StoredEvent> {
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let events = store.feed(after, page).await.unwrap();
        let Some(last) = events.last() else {
            return read;
        };
        after = last.position;
        read.extend(events);
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
    a_saga_is_read_with_its_log_and_its_rows,
    a_rewrite_replaces_the_rows_only_at_the_log_version_it_read,
    saga_ids_page_through_every_saga_in_id_order,
    a_rewrite_racing_appends_loses_none_of_them,
    the_feed_holds_every_event_in_commit_order_without_holes,
    a_saga_keeps_its_latest_snapshot_and_the_log_after_it_is_read,
    finished_sagas_are_archived_whole_and_nothing_in_flight_is_touched,
    an_append_racing_the_archive_either_keeps_the_saga_or_loses_to_it,
    two_sweeps_at_once_move_each_saga_once,
);
