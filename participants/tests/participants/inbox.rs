//! The inbox guarantee at the handler seam, without NATS: concurrent deliveries of one
//! message (several instances, redelivery) and concurrent attempts of one step apply once.

use crate::harness::{Backend, Database, command, output};
use saga_participants::account::{Account, RESERVE_CREDIT, ledger};
use saga_participants::admin::{Reply, Request};
use saga_participants::order::{CREATE_ORDER, Orders};
use saga_participants::{Kind, store::Store};
use saga_participants::{Participant, inbox, service};
use saga_protocol::CommandKind;
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

crate::both_backends!(
    concurrent_deliveries_apply_once,
    one_batch_applies_each_message_once,
    concurrent_creates_make_one_order
);

async fn concurrent_deliveries_apply_once(backend: Backend) {
    deliveries_apply_once(backend, false).await;
}

/// Every delivery through one handler, so they share the batch task and (most of them) one
/// transaction: copies and attempts inside one batch still apply once.
async fn one_batch_applies_each_message_once(backend: Backend) {
    deliveries_apply_once(backend, true).await;
}

async fn deliveries_apply_once(backend: Backend, one_handler: bool) {
    let db = Database::new(backend);
    let account = Account::new(Store::open(&db.url, 8).await.expect("store"));
    let opened = account
        .admin(Request::Open {
            customer_id: "alice".into(),
            initial_deposit: 100,
        })
        .await
        .expect("open");
    assert!(matches!(opened, Reply::Ok(_)), "{opened:?}");

    let saga = Uuid::new_v4();
    let payload = json!({ "customer_id": "alice", "amount": 30 });
    // Attempts 1 and 2 of one step, each delivered four times, all at once.
    let shared = service::stack(account.clone(), std::time::Duration::from_secs(20));
    let mut tasks = Vec::new();
    for attempt in [1, 2] {
        let c = command(
            saga,
            "reserve",
            attempt,
            Kind::Account,
            RESERVE_CREDIT,
            CommandKind::Forward,
            payload.clone(),
        );
        for _ in 0..4 {
            let service = if one_handler {
                shared.clone()
            } else {
                service::stack(account.clone(), std::time::Duration::from_secs(20))
            };
            let c = c.clone();
            tasks.push(tokio::spawn(async move { service.oneshot(c).await }));
        }
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("join").expect("handled"));
    }
    for reply in &replies {
        assert_eq!(output(reply)["reserved"], 30);
        let same_message: Vec<_> = replies
            .iter()
            .filter(|r| r.message_id == reply.message_id)
            .collect();
        assert!(
            same_message.iter().all(|r| *r == reply),
            "one recorded reply per message id"
        );
    }

    let mut conn = account.store().pool().acquire().await.expect("connection");
    let balances = ledger::load(&mut conn, "alice")
        .await
        .expect("load")
        .expect("account")
        .balances;
    assert_eq!(
        (balances.available, balances.reserved, balances.deposited),
        (70, 30, 100)
    );
    let inbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(inbox, 2, "one inbox row per message id");
}

async fn concurrent_creates_make_one_order(backend: Backend) {
    let db = Database::new(backend);
    let orders = Orders::new(Store::open(&db.url, 8).await.expect("store"), 1_000_000);
    let saga = Uuid::new_v4();
    let mut tasks = Vec::new();
    for attempt in 1..=6 {
        let c = command(
            saga,
            "order",
            attempt,
            Kind::Order,
            CREATE_ORDER,
            CommandKind::Forward,
            json!({ "customer_id": "bob", "amount": 10 }),
        );
        let orders = orders.clone();
        tasks.push(tokio::spawn(
            async move { inbox::handle(&orders, &c).await },
        ));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(output(&task.await.expect("join").expect("handled"))["order_id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let mut conn = orders.store().pool().acquire().await.expect("connection");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
}
