//! The order's events: the append-only log (`order_events`) of every order's lifecycle.
//!
//! The `type` tags are stored forever; a change of shape is a new schema version of that
//! type and an upcaster in [`SCHEMA`] (every type is at version 1 so far).
//!
//! ```
//! use saga_participants::order::events::{OrderEvent, decode, encode};
//! use saga_protocol::{upcast::Stored, Timestamp};
//!
//! let event = OrderEvent::OrderApproved { order_id: "o-1".into() };
//! let booked = Stored { recorded_at: Timestamp(5) };
//! assert_eq!(decode(&encode(&event), &booked).unwrap(), event);
//! ```

use saga_protocol::upcast::{Schema, Stored};
use serde::{Deserialize, Serialize};

/// The order log's schema: every type at version 1, no upcaster yet.
pub static SCHEMA: Schema = Schema {
    log: "order",
    newest: &[],
    upcasters: &[],
};

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrderEvent {
    #[serde(rename = "OrderCreated")]
    OrderCreated {
        order_id: String,
        customer_id: String,
        amount: i64,
        effect_key: String,
    },
    #[serde(rename = "OrderApproved")]
    OrderApproved { order_id: String },
    #[serde(rename = "OrderRejected")]
    OrderRejected { order_id: String, reason: String },
    #[serde(rename = "OrderCancelled")]
    OrderCancelled { order_id: String },
    /// The customer was told the approved order is confirmed (a step after the pivot).
    #[serde(rename = "OrderConfirmed")]
    OrderConfirmed { order_id: String },
}

impl OrderEvent {
    /// The stored `event_type` (equal to the serde tag).
    pub fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::OrderCreated { .. } => "OrderCreated",
            OrderEvent::OrderApproved { .. } => "OrderApproved",
            OrderEvent::OrderRejected { .. } => "OrderRejected",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::OrderConfirmed { .. } => "OrderConfirmed",
        }
    }

    /// The order the event belongs to.
    pub fn order_id(&self) -> &str {
        match self {
            OrderEvent::OrderCreated { order_id, .. }
            | OrderEvent::OrderApproved { order_id }
            | OrderEvent::OrderRejected { order_id, .. }
            | OrderEvent::OrderCancelled { order_id }
            | OrderEvent::OrderConfirmed { order_id } => order_id,
        }
    }
}

/// The stored payload of `event`: `{"schema_version": N, "type": …, …}`, at the newest
/// version of its type.
pub fn encode(event: &OrderEvent) -> String {
    crate::stored::encode(&SCHEMA, event.event_type(), event)
}

/// Reads a stored payload back, through the upcasters of every later version.
pub fn decode(payload: &str, stored: &Stored) -> Result<OrderEvent, String> {
    crate::stored::decode(&SCHEMA, payload, stored)
}
