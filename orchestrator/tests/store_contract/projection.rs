//! The read model as a projection: both sides of a saga read together, its rows rewritten
//! only from the log as it stands, never behind an append.

use super::*;
use saga_orchestrator::store::SagaRow;

/// A saga with tags, a key and a timer, created at 1 000 with two events.
async fn tagged<S: EventStore>(store: &S) -> Uuid {
    let mut new = saga("order", Some("key-7"), "sha256:aa");
    new.tags = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
    let id = new.saga_id;
    let summary = Summary {
        status: "running".into(),
        due_at: Some(Timestamp(9_000)),
    };
    let events = vec![event("SagaStarted", 1), event("StepRequested", 2)];
    store
        .create(new, events, summary, Timestamp(1_000))
        .await
        .unwrap();
    id
}

pub async fn a_saga_is_read_with_its_log_and_its_rows<S: EventStore>(store: S) {
    let id = tagged(&store).await;
    let projected = store.projected(id).await.unwrap();
    let (record, events) = store.load(id).await.unwrap().unwrap();
    assert_eq!(projected.events, events);
    let row = projected.row.expect("a created saga has its row");
    assert_eq!(row.record, record);
    assert_eq!(row.due_at, Some(Timestamp(9_000)));
    assert_eq!(
        row.tags,
        [("a".to_string(), "1".to_string()), ("b".into(), "2".into())],
        "sorted"
    );

    let unknown = store.projected(Uuid::new_v4()).await.unwrap();
    assert!(unknown.events.is_empty() && unknown.row.is_none());
}

pub async fn a_rewrite_replaces_the_rows_only_at_the_log_version_it_read<S: EventStore>(store: S) {
    let id = tagged(&store).await;
    let row = store.projected(id).await.unwrap().row.unwrap();
    let rewritten = SagaRow {
        record: SagaRecord {
            status: "compensating".into(),
            idempotency_key: None,
            updated_at: Timestamp(1_500),
            ..row.record.clone()
        },
        due_at: None,
        tags: vec![("c".into(), "3".into())],
    };

    // Made from a log that has moved on since (or not reached yet): refused, nothing written.
    for stale in [1, 3] {
        assert!(
            !store
                .reproject(id, stale, Some(rewritten.clone()))
                .await
                .unwrap(),
            "log version {stale}"
        );
        assert_eq!(store.projected(id).await.unwrap().row.unwrap(), row);
    }

    // At the log's version: every column but the key is replaced, and the tags with them.
    assert!(
        store
            .reproject(id, 2, Some(rewritten.clone()))
            .await
            .unwrap()
    );
    let now = store.projected(id).await.unwrap().row.unwrap();
    assert_eq!(now.record.status, "compensating");
    assert_eq!(now.record.updated_at, Timestamp(1_500));
    assert_eq!(
        now.record.idempotency_key.as_deref(),
        Some("key-7"),
        "the key stays"
    );
    assert_eq!(now.due_at, None);
    assert_eq!(now.tags, [("c".to_string(), "3".to_string())]);
    let search = |key: &str, value: &str| SagaQuery {
        tag: Some((key.into(), value.into())),
        limit: 10,
        ..SagaQuery::default()
    };
    assert_eq!(store.search(&search("c", "3")).await.unwrap().len(), 1);
    assert!(store.search(&search("a", "1")).await.unwrap().is_empty());
    assert!(store.due(Timestamp(i64::MAX), 10).await.unwrap().is_empty());

    // The saga goes on from the version the rewrite kept.
    let appended = store
        .append(
            id,
            2,
            vec![event("StepCompleted", 3)],
            "running",
            Timestamp(2_000),
        )
        .await
        .unwrap();
    assert_eq!(appended, 3);
}

pub async fn saga_ids_page_through_every_saga_in_id_order<S: EventStore>(store: S) {
    let mut ids = Vec::new();
    for at in 0..5 {
        ids.push(create_one(&store, "running", at).await);
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.saga_ids(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().copied() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    assert_eq!(seen, ids);
}

pub async fn a_rewrite_racing_appends_loses_none_of_them<S: EventStore>(store: S) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let id = create_one(&store, "running", 1).await;
    // Rewrites that took, shared so that the appends can make sure some land between them.
    let rewrites = Arc::new(AtomicU64::new(0));
    let appends = {
        let (store, rewrites) = (store.clone(), rewrites.clone());
        tokio::spawn(async move {
            for n in 1..=40u64 {
                let events = vec![event("StepCompleted", n)];
                let at = Timestamp(1 + i64::try_from(n).unwrap());
                store.append(id, n, events, "running", at).await.unwrap();
                // Every tenth append waits for one more rewrite to take, so rewrites and
                // appends interleave however fast either side runs.
                if n % 10 == 0 {
                    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
                    while rewrites.load(Ordering::SeqCst) < n / 10 {
                        assert!(tokio::time::Instant::now() < deadline, "no rewrite took");
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
    };
    // Meanwhile the rows are rewritten from the log again and again, each time as read.
    let mut refused = 0;
    while !appends.is_finished() {
        let projected = store.projected(id).await.unwrap();
        let mut row = projected.row.unwrap();
        let logged = projected.events.last().unwrap().sequence;
        assert_eq!(row.record.version, logged, "read together");
        row.record.status = "rebuilt".into();
        if store.reproject(id, logged, Some(row)).await.unwrap() {
            rewrites.fetch_add(1, Ordering::SeqCst);
        } else {
            refused += 1;
        }
        tokio::task::yield_now().await;
    }
    appends
        .await
        .expect("every append found the version it expected");
    assert!(rewrites.load(Ordering::SeqCst) >= 4, "{refused} refused");
    let (record, events) = store.load(id).await.unwrap().unwrap();
    assert_eq!((record.version, events.len()), (41, 41));
}
