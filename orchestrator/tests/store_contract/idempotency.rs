//! Idempotency keys: a key names one saga of each name, returns it while it holds, and is
//! released after its window.

use super::*;

pub async fn idempotency_key_returns_existing<S: EventStore>(store: S) {
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

pub async fn an_idempotency_key_is_scoped_by_saga_name_and_released_after_its_window<
    S: EventStore,
>(
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
