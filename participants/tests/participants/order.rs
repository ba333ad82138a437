//! The order participant over NATS: lifecycle, review limit, compensation before the action.

use crate::harness::{Backend, Participant, command, output, rejection};
use saga_participants::order::{APPROVE_ORDER, CANCEL_ORDER, CREATE_ORDER, book, order_id_for};
use saga_participants::{Kind, Options, admin};
use saga_protocol::{CommandEnvelope, CommandKind};
use serde_json::json;
use uuid::Uuid;

crate::both_backends!(
    create_then_approve,
    approve_above_review_limit_is_rejected,
    cancel_before_create_leaves_tombstone,
);

pub(crate) fn create(saga: Uuid, attempt: u32, amount: i64) -> CommandEnvelope {
    let payload = json!({ "customer_id": "alice", "amount": amount });
    command(
        saga,
        "order",
        attempt,
        Kind::Order,
        CREATE_ORDER,
        CommandKind::Forward,
        payload,
    )
}

pub(crate) fn cancel(saga: Uuid) -> CommandEnvelope {
    command(
        saga,
        "order",
        1,
        Kind::Order,
        CANCEL_ORDER,
        CommandKind::Compensation,
        json!({}),
    )
}

pub(crate) fn approve(saga: Uuid, order_id: &str) -> CommandEnvelope {
    let payload = json!({ "order_id": order_id, "amount": 1 });
    command(
        saga,
        "approve",
        1,
        Kind::Order,
        APPROVE_ORDER,
        CommandKind::Forward,
        payload,
    )
}

pub(crate) async fn send(p: &Participant, c: CommandEnvelope) -> saga_protocol::ReplyEnvelope {
    p.publish(&c, c.message_id.as_str()).await;
    p.reply(&c).await
}

async fn status(p: &Participant, order_id: &str) -> String {
    let orders = admin::orders(&p.client).await.expect("orders");
    let order = orders
        .iter()
        .find(|o| o.order_id == order_id)
        .expect("order listed");
    order.status.clone()
}

async fn create_then_approve(backend: Backend) {
    let p = Participant::start(Kind::Order, backend).await;
    let saga = Uuid::new_v4();
    let created = send(&p, create(saga, 1, 250)).await;
    let order_id = output(&created)["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    assert_eq!(order_id, order_id_for(&format!("{saga}.order")));
    assert_eq!(status(&p, &order_id).await, "pending");

    // A retry of the step names the same order and creates nothing new.
    let again = send(&p, create(saga, 2, 250)).await;
    assert_eq!(output(&again), output(&created));
    assert_eq!(admin::orders(&p.client).await.expect("orders").len(), 1);

    let approved = send(&p, approve(saga, &order_id)).await;
    assert_eq!(
        output(&approved),
        json!({ "order_id": order_id, "status": "approved" })
    );
    assert_eq!(status(&p, &order_id).await, "approved");

    let store = p.db.store().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    let events = book::events(&mut conn, &order_id).await.expect("events");
    let types: Vec<_> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["OrderCreated", "OrderApproved"]);
    p.stop().await;
}

async fn approve_above_review_limit_is_rejected(backend: Backend) {
    let options = Options {
        review_limit: 500,
        ..Options::default()
    };
    let p = Participant::start_with(Kind::Order, backend, options).await;
    let saga = Uuid::new_v4();
    let created = send(&p, create(saga, 1, 1000)).await;
    let order_id = output(&created)["order_id"]
        .as_str()
        .expect("order id")
        .to_string();

    let reply = send(&p, approve(saga, &order_id)).await;
    assert_eq!(
        rejection(&reply),
        "amount 1000 exceeds the review limit 500"
    );
    assert_eq!(status(&p, &order_id).await, "rejected");

    // The saga then compensates the creation: a rejected order can be cancelled.
    let cancelled = send(&p, cancel(saga)).await;
    assert_eq!(output(&cancelled)["status"], "cancelled");
    assert_eq!(status(&p, &order_id).await, "cancelled");
    p.stop().await;
}

async fn cancel_before_create_leaves_tombstone(backend: Backend) {
    let p = Participant::start(Kind::Order, backend).await;
    let saga = Uuid::new_v4();
    let undo = send(&p, cancel(saga)).await;
    assert_eq!(output(&undo)["status"], "tombstone");

    let late = send(&p, create(saga, 1, 10)).await;
    assert!(
        rejection(&late).contains("compensated before it arrived"),
        "{late:?}"
    );
    assert!(admin::orders(&p.client).await.expect("orders").is_empty());
    p.stop().await;
}
