//! The account's events: the append-only log (`account_events`) its balances are a fold of.
//!
//! The `type` tags are stored forever; a change of meaning needs a new schema version and an
//! upcaster in [`decode`], never an UPDATE of old rows.
//!
//! ```
//! use saga_participants::account::events::{AccountEvent, Balances, decode, encode};
//!
//! let event = AccountEvent::FundsDeposited { amount: 10, operation_id: "op-1".into() };
//! assert_eq!(decode(&encode(&event)).unwrap(), event);
//! assert_eq!(Balances::default().apply(&event).available, 10);
//! ```

use serde::{Deserialize, Serialize};

/// Schema version written into every stored event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Something that happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    #[serde(rename = "AccountOpened")]
    AccountOpened { account_id: String },
    /// `operation_id` is the admin deposit's idempotency key (`open` for the initial deposit).
    #[serde(rename = "FundsDeposited")]
    FundsDeposited { amount: i64, operation_id: String },
    #[serde(rename = "CreditReserved")]
    CreditReserved { amount: i64, effect_key: String },
    #[serde(rename = "CreditReleased")]
    CreditReleased { amount: i64, effect_key: String },
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

#[derive(Serialize, Deserialize)]
struct Stored {
    schema_version: u32,
    #[serde(flatten)]
    event: AccountEvent,
}

/// The stored payload of `event`: `{"schema_version": 1, "type": …, …}`.
pub fn encode(event: &AccountEvent) -> String {
    let stored = Stored {
        schema_version: EVENT_SCHEMA_VERSION,
        event: event.clone(),
    };
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// Reads a stored payload back (the place for upcasters of older schema versions).
pub fn decode(payload: &str) -> Result<AccountEvent, String> {
    let stored: Stored = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    if stored.schema_version == 0 || stored.schema_version > EVENT_SCHEMA_VERSION {
        return Err(format!(
            "unsupported account event schema version {}",
            stored.schema_version
        ));
    }
    Ok(stored.event)
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
        };
        let json: serde_json::Value = serde_json::from_str(&encode(&event)).unwrap_or_default();
        assert_eq!(json["type"], "CreditReserved");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(decode(&encode(&event)), Ok(event));
        assert!(
            decode(r#"{"schema_version": 9, "type": "AccountOpened", "account_id": "a"}"#).is_err()
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
            },
            AccountEvent::CreditReleased {
                amount: 10,
                effect_key: "k".into(),
            },
        ];
        let b = Balances::fold(&events);
        assert_eq!((b.available, b.reserved, b.deposited), (80, 20, 100));
        assert_eq!(b.available + b.reserved, b.deposited);
    }
}
