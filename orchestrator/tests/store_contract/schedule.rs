//! What the runtime acts on unasked: timers that fall due, sagas overdue.

use super::*;

/// Instantiates every contract body once per implementation. Tests run on a multi-threaded
/// runtime so the racing appends really run in parallel.
pub fn due_at(status: &str, at: Option<i64>) -> Summary {
    Summary {
        status: status.to_string(),
        due_at: at.map(Timestamp),
    }
}

pub async fn due_lists_the_timers_that_fall_due<S: EventStore>(store: S) {
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
pub async fn create_due<S: EventStore>(
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

pub async fn overdue_sagas_are_found_by_their_deadline_or_start<S: EventStore>(store: S) {
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
