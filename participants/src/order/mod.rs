//! The order participant: the lifecycle of an order (pending → approved | rejected, and
//! cancelled by compensation), with an append-only event log.
//!
//! | command        | kind         | payload                  | success output                 |
//! |----------------|--------------|--------------------------|--------------------------------|
//! | `CreateOrder`  | forward      | `{customer_id, amount}`  | `{order_id}`                   |
//! | `CancelOrder`  | compensation | (ignored: by effect key) | `{order_id, status}`           |
//! | `ApproveOrder` | forward      | `{order_id, amount?}`    | `{order_id, status: approved}` |
//! | `ConfirmOrder` | forward      | `{order_id}`             | `{order_id, confirmed: true}`  |
//!
//! The order id is a UUID v5 of the effect key ([`order_id_for`]), so a retried
//! `CreateOrder` names the same order and finds it. An order above the review limit is
//! rejected on approval. A `CancelOrder` that finds no order leaves a tombstone; the late
//! `CreateOrder` is then refused (DESIGN guarantee 6).
//!
//! ```
//! use saga_participants::order::order_id_for;
//! assert_eq!(order_id_for("saga-1.create_order"), order_id_for("saga-1.create_order"));
//! ```

pub mod book;
pub mod events;
pub mod projection;

use crate::admin::{OrderView, Reply, Request};
use crate::participant::{Error, Participant, payload, rejected, succeeded};
use crate::{Kind, store::Store};
use book::{Order, Status};
use events::OrderEvent;
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, Timestamp};
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

/// Creates a pending order (forward).
pub const CREATE_ORDER: &str = "CreateOrder";
/// Cancels the order created under the same effect key (compensation of `CreateOrder`).
pub const CANCEL_ORDER: &str = "CancelOrder";
/// Approves a pending order, or rejects it above the review limit (forward).
pub const APPROVE_ORDER: &str = "ApproveOrder";

/// Confirms an approved order to the customer, once (forward; a step after the pivot).
pub const CONFIRM_ORDER: &str = "ConfirmOrder";

/// Namespace of the order ids derived from effect keys. A persisted contract.
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x5d1b_0a57_8c1e_4f4e_9a2b_6f72_6465_7273);

/// The id of the order created under `effect_key`.
pub fn order_id_for(effect_key: &str) -> String {
    Uuid::new_v5(&ORDER_NAMESPACE, effect_key.as_bytes()).to_string()
}

/// The order participant.
#[derive(Debug, Clone)]
pub struct Orders {
    store: Store,
    review_limit: i64,
}

impl Orders {
    /// Orders whose amount is above `review_limit` are rejected on approval.
    pub fn new(store: Store, review_limit: i64) -> Self {
        Orders {
            store,
            review_limit,
        }
    }
}

impl Participant for Orders {
    const NAME: &'static str = Kind::Order.as_str();
    const COMMANDS: &'static [(&'static str, CommandKind)] = &[
        (CREATE_ORDER, CommandKind::Forward),
        (CANCEL_ORDER, CommandKind::Compensation),
        (APPROVE_ORDER, CommandKind::Forward),
        (CONFIRM_ORDER, CommandKind::Forward),
    ];

    fn store(&self) -> &Store {
        &self.store
    }

    async fn apply(
        &self,
        tx: &mut AnyConnection,
        command: &CommandEnvelope,
        now: Timestamp,
    ) -> Result<Outcome, Error> {
        match command.command.as_str() {
            CREATE_ORDER => create(tx, command, now).await,
            CANCEL_ORDER => cancel(tx, command, now).await,
            APPROVE_ORDER => approve(tx, command, self.review_limit, now).await,
            CONFIRM_ORDER => confirm(tx, command, now).await,
            other => Ok(rejected(format!("unknown order command `{other}`"))),
        }
    }

    async fn admin(&self, request: Request) -> Result<Reply, Error> {
        use crate::projection::answer;
        let store = &self.store;
        match request {
            Request::Orders => orders(store).await,
            Request::Verify { after, limit } => {
                answer::<projection::Orders>(store, after, limit, false).await
            }
            Request::Rebuild { after, limit } => {
                answer::<projection::Orders>(store, after, limit, true).await
            }
            _ => Ok(Reply::Error(
                "accounts are served by the account participant".into(),
            )),
        }
    }
}

/// Every order, for the admin request `orders`.
async fn orders(store: &Store) -> Result<Reply, Error> {
    let mut conn = store.pool().acquire().await?;
    let views: Vec<OrderView> = book::all(&mut conn)
        .await?
        .into_iter()
        .map(|o| OrderView {
            status: o.status.as_str().to_string(),
            order_id: o.order_id,
            customer_id: o.customer_id,
            amount: o.amount,
            effect_key: o.effect_key,
        })
        .collect();
    Ok(Reply::ok(&views))
}

/// Refusal of a forward command whose effect key holds a tombstone.
fn compensated_first(key: &str) -> Outcome {
    rejected(format!("{key} was compensated before it arrived"))
}

#[derive(Debug, Deserialize)]
struct CreateOrder {
    customer_id: String,
    amount: i64,
}

async fn create(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    if let Some(existing) = book::by_effect_key(tx, key).await? {
        return Ok(match existing.status {
            Status::Tombstone => compensated_first(key),
            Status::Cancelled => rejected(format!(
                "order {} was already created and cancelled (compensated)",
                existing.order_id
            )),
            // A retry of the same step: the order exists.
            _ => succeeded(json!({ "order_id": existing.order_id })),
        });
    }
    let args: CreateOrder = match payload(command) {
        Ok(args) => args,
        Err(refusal) => return Ok(refusal),
    };
    if args.amount <= 0 {
        return Ok(rejected(format!(
            "amount must be positive, got {}",
            args.amount
        )));
    }
    if args.customer_id.trim().is_empty() {
        return Ok(rejected("customer_id must not be empty"));
    }
    let order = Order {
        order_id: order_id_for(key),
        effect_key: key.to_string(),
        customer_id: args.customer_id,
        amount: args.amount,
        status: Status::Pending,
    };
    let event = OrderEvent::OrderCreated {
        order_id: order.order_id.clone(),
        customer_id: order.customer_id.clone(),
        amount: order.amount,
        effect_key: key.to_string(),
    };
    book::insert(tx, &order, Some(&event), now).await?;
    Ok(succeeded(json!({ "order_id": order.order_id })))
}

async fn cancel(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    let Some(order) = book::by_effect_key(tx, key).await? else {
        // Compensation before the action: leave a tombstone so the late create is refused.
        let tombstone = Order {
            order_id: order_id_for(key),
            effect_key: key.to_string(),
            customer_id: String::new(),
            amount: 0,
            status: Status::Tombstone,
        };
        book::insert(tx, &tombstone, None, now).await?;
        return Ok(succeeded(
            json!({ "order_id": tombstone.order_id, "status": "tombstone" }),
        ));
    };
    let done = |status: &str| succeeded(json!({ "order_id": order.order_id, "status": status }));
    match order.status {
        Status::Cancelled | Status::Tombstone => Ok(done(order.status.as_str())),
        Status::Pending | Status::Rejected => {
            let event = OrderEvent::OrderCancelled {
                order_id: order.order_id.clone(),
            };
            book::transition(tx, &order, Status::Cancelled, &event, now).await?;
            Ok(done("cancelled"))
        }
        // After the pivot: the saga must go forward, so refusing is the visible answer.
        Status::Approved => Ok(rejected(format!(
            "order {} is approved and cannot be cancelled",
            order.order_id
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct ApproveOrder {
    order_id: String,
}

async fn approve(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    review_limit: i64,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    let tombstone = |marker: Option<book::Order>| {
        marker.is_some_and(|marker| marker.status == Status::Tombstone)
    };
    let args: ApproveOrder = match payload(command) {
        Ok(args) => args,
        // A tombstone answers first, even for a payload that cannot be read.
        Err(_) if tombstone(book::by_effect_key(tx, key).await?) => {
            return Ok(compensated_first(key));
        }
        Err(refusal) => return Ok(refusal),
    };
    let (marker, order) = book::by_effect_key_and_id(tx, key, &args.order_id).await?;
    if tombstone(marker) {
        return Ok(compensated_first(key));
    }
    let order = match order {
        Some(order) if order.status != Status::Tombstone => order,
        _ => return Ok(rejected(format!("no order `{}`", args.order_id))),
    };
    let approved = || succeeded(json!({ "order_id": order.order_id, "status": "approved" }));
    let over_limit = || {
        format!(
            "amount {} exceeds the review limit {review_limit}",
            order.amount
        )
    };
    match order.status {
        Status::Approved => Ok(approved()),
        Status::Cancelled | Status::Tombstone => {
            Ok(rejected(format!("order {} is cancelled", order.order_id)))
        }
        Status::Rejected => Ok(rejected(format!(
            "order {} was rejected on review",
            order.order_id
        ))),
        Status::Pending if order.amount > review_limit => {
            let reason = over_limit();
            let event = OrderEvent::OrderRejected {
                order_id: order.order_id.clone(),
                reason: reason.clone(),
            };
            book::transition(tx, &order, Status::Rejected, &event, now).await?;
            Ok(rejected(reason))
        }
        Status::Pending => {
            let event = OrderEvent::OrderApproved {
                order_id: order.order_id.clone(),
            };
            book::transition(tx, &order, Status::Approved, &event, now).await?;
            Ok(approved())
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfirmOrder {
    order_id: String,
}

/// Records `OrderConfirmed` once for an approved order; a retried attempt finds it recorded.
async fn confirm(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let args: ConfirmOrder = match payload(command) {
        Ok(args) => args,
        Err(refusal) => return Ok(refusal),
    };
    let order = match book::by_id(tx, &args.order_id).await? {
        Some(order) if order.status == Status::Approved => order,
        Some(order) => {
            return Ok(rejected(format!(
                "order {} is {}, only an approved order can be confirmed",
                order.order_id,
                order.status.as_str()
            )));
        }
        None => return Ok(rejected(format!("no order `{}`", args.order_id))),
    };
    let confirmed = book::events(tx, &order.order_id)
        .await?
        .iter()
        .any(|e| matches!(e, OrderEvent::OrderConfirmed { .. }));
    if !confirmed {
        let event = OrderEvent::OrderConfirmed {
            order_id: order.order_id.clone(),
        };
        book::append(tx, &event, now).await?;
    }
    Ok(succeeded(
        json!({ "order_id": order.order_id, "confirmed": true }),
    ))
}
