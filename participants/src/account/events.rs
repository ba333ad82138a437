//! The account's events: the append-only log (`account_events`) its balances are a fold of.
//!
//! The `type` tags are stored forever; a change of shape is a new schema version of that
//! type and an upcaster in [`SCHEMA`], never an UPDATE of old rows. [`decode`] reads every
//! version this build knows; [`encode`] writes the newest.
//!
//! | type | version | change |
//! |---|---|---|
//! | `CreditReserved`, `CreditReleased` | 2 | `requested_at`: when the command was sent (version 1 rows read it as their booking time) |
//!
//! ```
//! use saga_participants::account::events::{AccountEvent, Balances, decode, encode};
//! use saga_protocol::{upcast::Stored, Timestamp};
//!
//! let event = AccountEvent::FundsDeposited { amount: 10, operation_id: "op-1".into() };
//! let booked = Stored { recorded_at: Timestamp(5) };
//! assert_eq!(decode(&encode(&event), &booked).unwrap(), event);
//! assert_eq!(Balances::default().apply(&event).available, 10);
//! ```

use saga_protocol::Timestamp;
use saga_protocol::upcast::{Schema, Stored, Upcaster};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The account log's schema: each event type's newest version and the upcasters up to it.
pub static SCHEMA: Schema = Schema {
    log: "account",
    newest: &[("CreditReserved", 2), ("CreditReleased", 2)],
    upcasters: &[
        Upcaster {
            event_type: "CreditReserved",
            from: 1,
            change: REQUESTED_AT,
            apply: requested_at_v2,
        },
        Upcaster {
            event_type: "CreditReleased",
            from: 1,
            change: REQUESTED_AT,
            apply: requested_at_v2,
        },
    ],
};

const REQUESTED_AT: &str = "`requested_at` is when the command was sent";

/// Version 1 did not record when the command was sent: the best bound known is the time the
/// entry was booked, which is what it is read as.
fn requested_at_v2(
    mut payload: Map<String, Value>,
    stored: &Stored,
) -> Result<Map<String, Value>, String> {
    payload.insert("requested_at".into(), Value::from(stored.recorded_at.0));
    Ok(payload)
}

/// Something that happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    #[serde(rename = "AccountOpened")]
    AccountOpened { account_id: String },
    /// `operation_id` is the admin deposit's idempotency key (`open` for the initial deposit).
    #[serde(rename = "FundsDeposited")]
    FundsDeposited { amount: i64, operation_id: String },
    /// `requested_at`: when the orchestrator sent the command (its clock).
    #[serde(rename = "CreditReserved")]
    CreditReserved {
        amount: i64,
        effect_key: String,
        requested_at: Timestamp,
    },
    #[serde(rename = "CreditReleased")]
    CreditReleased {
        amount: i64,
        effect_key: String,
        requested_at: Timestamp,
    },
}

impl AccountEvent {
    /// The stored `event_type` (equal to the serde tag).
    pub fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::FundsDeposited { .. } => "FundsDeposited",
            AccountEvent::CreditReserved { .. } => "CreditReserved",
            AccountEvent::CreditReleased { .. } => "CreditReleased",
        }
    }
}

/// The stored payload of `event`: `{"schema_version": N, "type": …, …}`, at the newest
/// version of its type.
pub fn encode(event: &AccountEvent) -> String {
    crate::stored::encode(&SCHEMA, event.event_type(), event)
}

/// Reads a stored payload back, through the upcasters of every later version; `stored` is
/// what the row says besides (when it was booked).
pub fn decode(payload: &str, stored: &Stored) -> Result<AccountEvent, String> {
    crate::stored::decode(&SCHEMA, payload, stored)
}

/// The balances of an account: the projection kept in `accounts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    pub available: i64,
    pub reserved: i64,
    pub deposited: i64,
}

impl Balances {
    /// The balances after `event`. Each event keeps `available + reserved == deposited`.
    pub fn apply(self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::AccountOpened { .. } => Balances::default(),
            AccountEvent::FundsDeposited { amount, .. } => Balances {
                available: self.available + amount,
                deposited: self.deposited + amount,
                ..self
            },
            AccountEvent::CreditReserved { amount, .. } => Balances {
                available: self.available - amount,
                reserved: self.reserved + amount,
                ..self
            },
            AccountEvent::CreditReleased { amount, .. } => Balances {
                available: self.available + amount,
                reserved: self.reserved - amount,
                ..self
            },
        }
    }

    /// The balances after every event of `events`, from an unopened account.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a AccountEvent>) -> Self {
        events
            .into_iter()
            .fold(Balances::default(), |b, e| b.apply(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_payload_carries_type_tag_and_schema_version() {
        let event = AccountEvent::CreditReserved {
            amount: 5,
            effect_key: "s.reserve".into(),
            requested_at: Timestamp(3),
        };
        let booked = Stored {
            recorded_at: Timestamp(4),
        };
        let json: serde_json::Value = serde_json::from_str(&encode(&event)).unwrap_or_default();
        assert_eq!(json["type"], "CreditReserved");
        assert_eq!(json["schema_version"], 2);
        assert_eq!(decode(&encode(&event), &booked), Ok(event));
        let newer = r#"{"schema_version": 9, "type": "AccountOpened", "account_id": "a"}"#;
        assert_eq!(
            decode(newer, &booked),
            Err(
                "account event AccountOpened has schema version 9, newer than this build \
                 reads (up to 1): it was written by a newer build"
                    .into()
            )
        );
        assert!(SCHEMA.problems().is_empty(), "{:?}", SCHEMA.problems());
    }

    #[test]
    fn a_version_1_reservation_reads_as_requested_when_it_was_booked() {
        let v1 =
            r#"{"schema_version": 1, "type": "CreditReleased", "amount": 7, "effect_key": "k"}"#;
        let booked = Stored {
            recorded_at: Timestamp(1_700_000_000_000),
        };
        assert_eq!(
            decode(v1, &booked),
            Ok(AccountEvent::CreditReleased {
                amount: 7,
                effect_key: "k".into(),
                requested_at: Timestamp(1_700_000_000_000),
            })
        );
    }

    #[test]
    fn fold_keeps_money_conserved() {
        let events = [
            AccountEvent::AccountOpened {
                account_id: "a".into(),
            },
            AccountEvent::FundsDeposited {
                amount: 100,
                operation_id: "open".into(),
            },
            AccountEvent::CreditReserved {
                amount: 30,
                effect_key: "k".into(),
                requested_at: Timestamp(1),
            },
            AccountEvent::CreditReleased {
                amount: 10,
                effect_key: "k".into(),
                requested_at: Timestamp(2),
            },
        ];
        let b = Balances::fold(&events);
        assert_eq!((b.available, b.reserved, b.deposited), (80, 20, 100));
        assert_eq!(b.available + b.reserved, b.deposited);
    }
}
