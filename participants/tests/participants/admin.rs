//! Admin request/reply: opening and funding accounts, reading balances.

use crate::harness::{Backend, Participant};
use saga_participants::{Kind, admin};

crate::both_backends!(
    open_deposit_and_balance,
    deposit_is_idempotent_by_operation_id
);

async fn open_deposit_and_balance(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    let opened = admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    let expected = admin::Balance {
        customer_id: "alice".into(),
        available: 100,
        reserved: 0,
        deposited: 100,
    };
    assert_eq!(opened, expected);
    // Opening again is idempotent: the second initial deposit is not applied.
    let again = admin::open_account(&p.client, "alice", 50)
        .await
        .expect("open again");
    assert_eq!(again, expected);
    admin::open_account(&p.client, "bob", 0)
        .await
        .expect("open bob");

    let after = admin::deposit(&p.client, "alice", 25, "op-1")
        .await
        .expect("deposit");
    assert_eq!((after.available, after.deposited), (125, 125));
    assert_eq!(
        admin::balance(&p.client, "alice").await.expect("balance"),
        after
    );

    let all = admin::balances(&p.client).await.expect("balances");
    let names: Vec<_> = all.iter().map(|b| b.customer_id.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    for refused in [
        admin::balance(&p.client, "nobody").await,
        admin::deposit(&p.client, "nobody", 5, "op-x").await,
        admin::deposit(&p.client, "alice", -5, "op-y").await,
        admin::open_account(&p.client, "carol", -1).await,
    ] {
        assert!(
            matches!(refused, Err(admin::Error::Refused(_))),
            "{refused:?}"
        );
    }
    // Orders are the order participant's: nobody serves them here.
    assert!(matches!(
        admin::orders(&p.client).await,
        Err(admin::Error::Request { .. })
    ));
    p.stop().await;
}

async fn deposit_is_idempotent_by_operation_id(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "dave", 10)
        .await
        .expect("open");
    let first = admin::deposit(&p.client, "dave", 25, "op-1")
        .await
        .expect("deposit");
    let repeat = admin::deposit(&p.client, "dave", 25, "op-1")
        .await
        .expect("repeat");
    assert_eq!(first, repeat, "a repeat answers the recorded reply");
    let other = admin::deposit(&p.client, "dave", 5, "op-2")
        .await
        .expect("deposit 2");
    assert_eq!(other.deposited, 40);
    let b = admin::balance(&p.client, "dave").await.expect("balance");
    assert_eq!((b.available, b.reserved, b.deposited), (40, 0, 40));
    p.stop().await;
}
