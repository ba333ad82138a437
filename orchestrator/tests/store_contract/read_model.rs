//! The read model: counts, lists, search and paging, over the `sagas` and `saga_tags` rows.

use super::*;

pub async fn sagas_started_are_counted_per_bucket_by_creation_time<S: EventStore>(store: S) {
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

pub async fn with_status_filters_and_orders_oldest_first<S: EventStore>(store: S) {
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

    // Quiet: the same, of those last appended to before the time given (a at 10, d at 40).
    assert_eq!(
        store.quiet(&in_flight, Timestamp(41)).await.unwrap(),
        [a, d]
    );
    assert_eq!(store.quiet(&in_flight, Timestamp(40)).await.unwrap(), [a]);
    assert!(
        store
            .quiet(&in_flight, Timestamp(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.quiet(&["completed"], Timestamp(50)).await.unwrap(),
        [b]
    );
    assert!(store.quiet(&[], Timestamp(100)).await.unwrap().is_empty());
}

pub async fn list_is_newest_first_and_limited<S: EventStore>(store: S) {
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

pub async fn load_of_unknown_is_none<S: EventStore>(store: S) {
    assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
    create_one(&store, "running", 1).await;
    assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
}

/// Creates a saga for the search test: `name` version `version`, `status`, created at `at`,
/// with the input field `customer_id`.
pub async fn create_tagged<S: EventStore>(
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

pub fn ids(records: &[SagaRecord]) -> Vec<Uuid> {
    records.iter().map(|r| r.saga_id).collect()
}

pub async fn search_filters_and_pages_newest_first<S: EventStore>(store: S) {
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
