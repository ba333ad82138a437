//! The order's events: the append-only log (`order_events`) of every order's lifecycle.
//!
//! The `type` tags are stored forever; a change of meaning needs a new schema version and an
//! upcaster in [`decode`].
//!
//! ```
//! use saga_participants::order::events::{OrderEvent, decode, encode};
//!
//! let event = OrderEvent::OrderApproved { order_id: "o-1".into() };
//! assert_eq!(decode(&encode(&event)).unwrap(), event);
//! ```

use serde::{Deserialize, Serialize};

/// Schema version written into every stored event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

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

#[derive(Serialize, Deserialize)]
struct Stored {
    schema_version: u32,
    #[serde(flatten)]
    event: OrderEvent,
}

/// The stored payload of `event`: `{"schema_version": 1, "type": …, …}`.
pub fn encode(event: &OrderEvent) -> String {
    let stored = Stored {
        schema_version: EVENT_SCHEMA_VERSION,
        event: event.clone(),
    };
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// Reads a stored payload back (the place for upcasters of older schema versions).
pub fn decode(payload: &str) -> Result<OrderEvent, String> {
    let stored: Stored = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    if stored.schema_version == 0 || stored.schema_version > EVENT_SCHEMA_VERSION {
        return Err(format!(
            "unsupported order event schema version {}",
            stored.schema_version
        ));
    }
    Ok(stored.event)
}
