//! The feed: every saga's events by position, 1, 2, 3… in commit order, without holes.

use super::*;

pub async fn the_feed_holds_every_event_in_commit_order_without_holes<S: EventStore>(store: S) {
    assert_eq!(store.feed_head().await.unwrap(), 0, "an empty feed");
    let a = create_one(&store, "running", 1).await;
    let b = create_one(&store, "running", 2).await;
    store
        .append(
            a,
            1,
            vec![event("E", 1), event("E", 2)],
            "running",
            Timestamp(3),
        )
        .await
        .unwrap();
    // A refused append takes no position: the next write's follow on.
    let stale = store
        .append(b, 0, vec![event("E", 9)], "running", Timestamp(4))
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    store
        .append(b, 1, vec![event("E", 3)], "completed", Timestamp(5))
        .await
        .unwrap();

    let feed = store.feed(0, 100).await.unwrap();
    let positions: Vec<u64> = feed.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    let order: Vec<(Uuid, u64)> = feed.iter().map(|e| (e.saga_id, e.sequence)).collect();
    assert_eq!(
        order,
        [(a, 1), (b, 1), (a, 2), (a, 3), (b, 2)],
        "in the order written"
    );
    // Each is the event as its saga's log holds it.
    let (_, log) = store.load(a).await.unwrap().unwrap();
    assert_eq!(feed[2], log[1]);

    // Read on from any position: the rest, nothing twice.
    let paged = feed_in_pages(&store, 2).await;
    assert_eq!(paged, feed);
    assert!(store.feed(5, 10).await.unwrap().is_empty());
    assert_eq!(
        store.feed_head().await.unwrap(),
        5,
        "the last position committed"
    );
}
