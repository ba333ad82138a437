//! The `orders` projection: each order's customer, amount, effect key and status, the fold of
//! its `order_events`. Tombstones (a compensation that came first) have no log and are not
//! part of it: they are left as they are.

use super::book::Status;
use super::events::{self, OrderEvent};
use crate::participant::Error;
use crate::projection::Projection;
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;
use serde_json::{Value, json};
use sqlx::AnyConnection;

/// An `orders` row, tombstones aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub effect_key: String,
    pub customer_id: String,
    pub amount: i64,
    pub status: Status,
    /// When its first and last events happened (a row written anew takes them).
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The order participant's projection.
pub struct Orders;

impl Projection for Orders {
    type Row = Row;
    type Event = OrderEvent;
    const NAME: &'static str = "orders";
    const KEY: &'static str = "order_id";
    const LOG: &'static str = "order_events";
    const ROWS: &'static str = "orders";
    const PROJECTED: &'static str = "status <> 'tombstone'";
    /// Every transition updates the row `WHERE status = …`.
    const LOCKED: &'static str = "status";

    fn decode(payload: &str, stored: &Stored) -> Result<OrderEvent, String> {
        events::decode(payload, stored)
    }

    fn fold(events: &[(OrderEvent, Timestamp)]) -> Result<Option<Row>, String> {
        let mut row: Option<Row> = None;
        for ((event, at), sequence) in events.iter().zip(1..) {
            let status = match (event, &row) {
                (
                    OrderEvent::OrderCreated {
                        customer_id,
                        amount,
                        effect_key,
                        ..
                    },
                    None,
                ) => {
                    row = Some(Row {
                        effect_key: effect_key.clone(),
                        customer_id: customer_id.clone(),
                        amount: *amount,
                        status: Status::Pending,
                        created_at: *at,
                        updated_at: *at,
                    });
                    continue;
                }
                (OrderEvent::OrderApproved { .. }, Some(_)) => Status::Approved,
                (OrderEvent::OrderRejected { .. }, Some(_)) => Status::Rejected,
                (OrderEvent::OrderCancelled { .. }, Some(_)) => Status::Cancelled,
                (OrderEvent::OrderConfirmed { .. }, Some(order)) => order.status,
                (event, _) => {
                    return Err(format!(
                        "event {sequence} ({}) does not follow the events before it",
                        event.event_type()
                    ));
                }
            };
            if let Some(order) = &mut row {
                order.status = status;
                order.updated_at = *at;
            }
        }
        Ok(row)
    }

    async fn stored(tx: &mut AnyConnection, key: &str) -> Result<Option<Row>, Error> {
        let row: Option<(String, String, i64, String, i64, i64)> = sqlx::query_as(
            "SELECT effect_key, customer_id, amount, status, created_at, updated_at FROM orders \
             WHERE order_id = $1 AND status <> 'tombstone'",
        )
        .bind(key)
        .fetch_optional(tx)
        .await?;
        row.map(
            |(effect_key, customer_id, amount, status, created_at, updated_at)| {
                Ok(Row {
                    effect_key,
                    customer_id,
                    amount,
                    status: Status::parse(&status)?,
                    created_at: Timestamp(created_at),
                    updated_at: Timestamp(updated_at),
                })
            },
        )
        .transpose()
    }

    fn columns(stored: &Row, expected: &Row) -> Vec<(&'static str, Value, Value)> {
        // Not the times: a confirmation is logged without touching the row's `updated_at`.
        vec![
            (
                "effect_key",
                json!(stored.effect_key),
                json!(expected.effect_key),
            ),
            (
                "customer_id",
                json!(stored.customer_id),
                json!(expected.customer_id),
            ),
            ("amount", json!(stored.amount), json!(expected.amount)),
            (
                "status",
                json!(stored.status.as_str()),
                json!(expected.status.as_str()),
            ),
        ]
    }

    fn summary(row: &Row) -> Value {
        json!({
            "customer_id": row.customer_id,
            "amount": row.amount,
            "status": row.status.as_str(),
        })
    }

    async fn write(tx: &mut AnyConnection, key: &str, row: Option<Row>) -> Result<(), Error> {
        let Some(row) = row else {
            sqlx::query("DELETE FROM orders WHERE order_id = $1 AND status <> 'tombstone'")
                .bind(key)
                .execute(tx)
                .await?;
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO orders (order_id, effect_key, customer_id, amount, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO UPDATE \
             SET effect_key = excluded.effect_key, customer_id = excluded.customer_id, \
             amount = excluded.amount, status = excluded.status",
        )
        .bind(key)
        .bind(&row.effect_key)
        .bind(&row.customer_id)
        .bind(row.amount)
        .bind(row.status.as_str())
        .bind(row.created_at.millis())
        .bind(row.updated_at.millis())
        .execute(tx)
        .await?;
        Ok(())
    }
}
