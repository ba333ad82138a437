//! The participants' read models (`accounts`, `orders`) verified against the fold of their
//! logs and rebuilt from them over admin requests, after corrupting them in SQL.

use crate::account::reserve;
use crate::harness::{Backend, Participant, output, rejection};
use crate::order::{approve, cancel, create, send};
use saga_participants::Kind;
use saga_participants::admin::{self, ACCOUNT_SUBJECT, Difference, ORDER_SUBJECT};
use saga_participants::order::order_id_for;
use std::collections::BTreeSet;
use uuid::Uuid;

crate::both_backends!(
    a_corrupted_accounts_projection_is_found_and_rebuilt,
    a_corrupted_orders_projection_is_found_and_rebuilt_and_tombstones_stay,
);

/// Every page of a verify (or rebuild) of the participant behind `subject`, `limit` keys a
/// page: the differences, the keys checked and the rows rebuilt.
async fn walk(
    p: &Participant,
    subject: &'static str,
    rebuild: bool,
    limit: u32,
) -> (Vec<Difference>, u64, u64) {
    let (mut differences, mut checked, mut rebuilt) = (Vec::new(), 0, 0);
    let mut after = None;
    loop {
        let page = admin::projection(&p.client, subject, rebuild, after, Some(limit))
            .await
            .expect("page");
        assert!(page.checked <= u64::from(limit));
        checked += page.checked;
        rebuilt += page.rebuilt;
        differences.extend(page.differences);
        match page.next {
            Some(next) => after = Some(next),
            None => return (differences, checked, rebuilt),
        }
    }
}

fn fields(differences: &[Difference]) -> BTreeSet<(String, String)> {
    differences
        .iter()
        .map(|d| (d.key.clone(), d.field.clone()))
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(key, field)| (key.to_string(), field.to_string()))
        .collect()
}

async fn corrupt(p: &Participant, statements: &[String]) {
    let store = p.db.store().await;
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(store.pool())
            .await
            .expect("corrupting statement");
    }
}

async fn a_corrupted_accounts_projection_is_found_and_rebuilt(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    admin::open_account(&p.client, "bob", 50)
        .await
        .expect("open");
    output(&send(&p, reserve(Uuid::new_v4(), 1, "alice", 30)).await);
    let (clean, checked, _) = walk(&p, ACCOUNT_SUBJECT, false, 2).await;
    assert_eq!((clean.len(), checked), (0, 2), "{clean:?}");

    // A wrong balance and version, a lost row, and a row with no log.
    corrupt(
        &p,
        &[
            "UPDATE accounts SET available = 0, version = 7 WHERE account_id = 'alice'".into(),
            "DELETE FROM accounts WHERE account_id = 'bob'".into(),
            "INSERT INTO accounts (account_id, available, reserved, deposited, version) \
             VALUES ('ghost', 5, 0, 5, 1)"
                .into(),
        ],
    )
    .await;
    let expected = set(&[
        ("alice", "available"),
        ("alice", "version"),
        ("bob", "row"),
        ("ghost", "row"),
    ]);
    let (found, checked, rebuilt) = walk(&p, ACCOUNT_SUBJECT, false, 2).await;
    assert_eq!((checked, rebuilt), (3, 0));
    assert_eq!(fields(&found), expected, "{found:?}");
    let available = found.iter().find(|d| d.field == "available").unwrap();
    assert_eq!(
        (&available.stored, &available.expected),
        (&0.into(), &70.into())
    );
    assert_eq!(
        fields(&walk(&p, ACCOUNT_SUBJECT, false, 500).await.0),
        expected
    );

    let (mended, checked, rebuilt) = walk(&p, ACCOUNT_SUBJECT, true, 2).await;
    assert_eq!((checked, rebuilt), (3, 3));
    assert_eq!(fields(&mended), expected);
    let (after, checked, _) = walk(&p, ACCOUNT_SUBJECT, false, 2).await;
    assert_eq!((after.len(), checked), (0, 2), "{after:?}");

    // The accounts are as their logs say, and go on from there.
    let alice = admin::balance(&p.client, "alice").await.expect("alice");
    assert_eq!(
        (alice.available, alice.reserved, alice.deposited),
        (70, 30, 100)
    );
    assert_eq!(
        admin::balance(&p.client, "bob")
            .await
            .expect("bob")
            .available,
        50
    );
    assert!(matches!(
        admin::balance(&p.client, "ghost").await,
        Err(admin::Error::Refused(_))
    ));
    output(&send(&p, reserve(Uuid::new_v4(), 1, "alice", 10)).await);
    let alice = admin::balance(&p.client, "alice").await.expect("alice");
    assert_eq!((alice.available, alice.reserved), (60, 40));

    // A page out of range is refused with the range.
    let refused = admin::projection(&p.client, ACCOUNT_SUBJECT, false, None, Some(0)).await;
    assert!(
        matches!(&refused, Err(admin::Error::Refused(r)) if r.contains("use 1 to 5000")),
        "{refused:?}"
    );
    p.stop().await;
}

async fn a_corrupted_orders_projection_is_found_and_rebuilt_and_tombstones_stay(backend: Backend) {
    let p = Participant::start(Kind::Order, backend).await;
    let (approved_saga, pending_saga, undone_saga) =
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let a = output(&send(&p, create(approved_saga, 1, 10)).await)["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    output(&send(&p, approve(approved_saga, &a)).await);
    let b = output(&send(&p, create(pending_saga, 1, 20)).await)["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        output(&send(&p, cancel(undone_saga)).await)["status"],
        "tombstone"
    );
    let (clean, checked, _) = walk(&p, ORDER_SUBJECT, false, 1).await;
    assert_eq!(
        (clean.len(), checked),
        (0, 2),
        "a tombstone is not an order: {clean:?}"
    );

    corrupt(
        &p,
        &[
            format!("UPDATE orders SET status = 'pending' WHERE order_id = '{a}'"),
            format!("DELETE FROM orders WHERE order_id = '{b}'"),
        ],
    )
    .await;
    let expected = set(&[(&a, "status"), (&b, "row")]);
    let (found, _, _) = walk(&p, ORDER_SUBJECT, false, 1).await;
    assert_eq!(fields(&found), expected, "{found:?}");
    let (mended, checked, rebuilt) = walk(&p, ORDER_SUBJECT, true, 1).await;
    assert_eq!((checked, rebuilt), (2, 2));
    assert_eq!(fields(&mended), expected);
    assert!(walk(&p, ORDER_SUBJECT, false, 1).await.0.is_empty());

    let orders = admin::orders(&p.client).await.expect("orders");
    let status = |id: &str| {
        orders
            .iter()
            .find(|o| o.order_id == id)
            .map(|o| (o.status.clone(), o.amount))
    };
    assert_eq!(status(&a), Some(("approved".into(), 10)));
    assert_eq!(status(&b), Some(("pending".into(), 20)));
    // The tombstone still refuses its late command, and the rebuilt order goes on.
    let late = send(&p, create(undone_saga, 1, 5)).await;
    assert!(
        rejection(&late).contains("compensated before it arrived"),
        "{late:?}"
    );
    let undone = order_id_for(&format!("{undone_saga}.order"));
    assert_eq!(status(&undone), None);
    assert_eq!(
        output(&send(&p, approve(pending_saga, &b)).await)["status"],
        "approved"
    );
    p.stop().await;
}
