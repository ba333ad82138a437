//! SQL of the order participant: `orders` (one row per effect key) and the `order_events` log.
//! Every function runs inside the caller's transaction.
//!
//! A compensation that arrives before its `CreateOrder` leaves a row with status `tombstone`
//! under the same effect key, so the two race on one unique key and cannot both win.

use super::events::{self, OrderEvent};
use crate::participant::Error;
use saga_protocol::Timestamp;
use sqlx::AnyConnection;

/// Where an order is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Cancelled,
    /// Not an order: the compensation came first, the late `CreateOrder` must be refused.
    Tombstone,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Tombstone => "tombstone",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            "cancelled" => Status::Cancelled,
            "tombstone" => Status::Tombstone,
            other => return Err(Error::Corrupt(format!("order status `{other}`"))),
        })
    }
}

/// A row of `orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub effect_key: String,
    pub customer_id: String,
    pub amount: i64,
    pub status: Status,
}

type OrderRow = (String, String, String, i64, String);

fn order(row: OrderRow) -> Result<Order, Error> {
    let (order_id, effect_key, customer_id, amount, status) = row;
    Ok(Order {
        order_id,
        effect_key,
        customer_id,
        amount,
        status: Status::parse(&status)?,
    })
}

/// The order (or tombstone) created under `effect_key`.
pub async fn by_effect_key(
    conn: &mut AnyConnection,
    effect_key: &str,
) -> Result<Option<Order>, Error> {
    let row: Option<OrderRow> = sqlx::query_as(
        "SELECT order_id, effect_key, customer_id, amount, status FROM orders \
         WHERE effect_key = $1",
    )
    .bind(effect_key)
    .fetch_optional(conn)
    .await?;
    row.map(order).transpose()
}

/// The order `order_id` (or tombstone with that id).
pub async fn by_id(conn: &mut AnyConnection, order_id: &str) -> Result<Option<Order>, Error> {
    let row: Option<OrderRow> = sqlx::query_as(
        "SELECT order_id, effect_key, customer_id, amount, status FROM orders \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(order).transpose()
}

/// The order (or tombstone) created under `effect_key`, and the order `order_id`, in one
/// look-up: [`by_effect_key`] and [`by_id`] together.
pub async fn by_effect_key_and_id(
    conn: &mut AnyConnection,
    effect_key: &str,
    order_id: &str,
) -> Result<(Option<Order>, Option<Order>), Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT order_id, effect_key, customer_id, amount, status FROM orders \
         WHERE effect_key = $1 OR order_id = $2",
    )
    .bind(effect_key)
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    let (mut by_key, mut by_id) = (None, None);
    for row in rows {
        let found = order(row)?;
        if found.effect_key == effect_key {
            by_key = Some(found.clone());
        }
        if found.order_id == order_id {
            by_id = Some(found);
        }
    }
    Ok((by_key, by_id))
}

/// Every order (tombstones excluded), oldest first.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Order>, Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT order_id, effect_key, customer_id, amount, status FROM orders \
         WHERE status <> 'tombstone' ORDER BY created_at, order_id",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(order).collect()
}

/// Inserts `order` (a new pending order or a tombstone), with `event` if it is an order.
/// A concurrent insert under the same effect key is a [`Error::Conflict`].
pub async fn insert(
    conn: &mut AnyConnection,
    order: &Order,
    event: Option<&OrderEvent>,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO orders (order_id, effect_key, customer_id, amount, status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&order.order_id)
    .bind(&order.effect_key)
    .bind(&order.customer_id)
    .bind(order.amount)
    .bind(order.status.as_str())
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    if let Some(event) = event {
        append(conn, event, now).await?;
    }
    Ok(())
}

/// Moves `order` to `to` and appends `event`, or fails with a conflict if its status moved.
pub async fn transition(
    conn: &mut AnyConnection,
    order: &Order,
    to: Status,
    event: &OrderEvent,
    now: Timestamp,
) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE orders SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now.millis())
    .bind(&order.order_id)
    .bind(order.status.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "order {} is no longer {}",
            order.order_id,
            order.status.as_str()
        )));
    }
    append(conn, event, now).await
}

/// Appends `event` after the last event of its order, in one statement (the next sequence is
/// read by the INSERT itself); the (order_id, sequence) key makes a racing append fail with a
/// conflict.
pub async fn append(
    conn: &mut AnyConnection,
    event: &OrderEvent,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO order_events (order_id, sequence, event_type, payload, occurred_at) \
         SELECT $1, COALESCE(MAX(sequence), 0) + 1, $2, $3, $4 FROM order_events \
         WHERE order_id = $1",
    )
    .bind(event.order_id())
    .bind(event.event_type())
    .bind(events::encode(event))
    .bind(now.millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// The events of `order_id`, oldest first.
pub async fn events(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<OrderEvent>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload, occurred_at FROM order_events WHERE order_id = $1 ORDER BY sequence",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|(payload, booked)| {
            let stored = saga_protocol::upcast::Stored {
                recorded_at: Timestamp(*booked),
            };
            events::decode(payload, &stored).map_err(Error::Corrupt)
        })
        .collect()
}
