//! Fuzzing the participants' stored-event decoders (proptest): random text, and the stored
//! form of real events with random edits. A decoder answers Ok or an error, never panics;
//! what decodes encodes back to a payload that decodes to the same event.
//!
//! `make test` runs 256 cases a target; a longer run: `PROPTEST_CASES=100000 cargo test
//! -p saga-participants --test fuzz --release`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use saga_participants::account::events::{self as account, AccountEvent};
use saga_participants::order::events::{self as order, OrderEvent};
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;

/// What the row says besides the payload: when it was booked.
const BOOKED: Stored = Stored {
    recorded_at: Timestamp(1_700_000_000_000),
};

/// Random byte replacements, insertions and a cut, applied to `text` (kept only if still
/// UTF-8, as stored payloads are text).
fn edited(text: String, edits: &[(usize, u8, bool)], cut: Option<usize>) -> Option<String> {
    let mut bytes = text.into_bytes();
    for &(at, b, insert) in edits {
        let at = at % bytes.len().max(1);
        if insert {
            bytes.insert(at, b);
        } else if let Some(slot) = bytes.get_mut(at) {
            *slot = b;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % bytes.len().max(1));
    }
    String::from_utf8(bytes).ok()
}

fn account_event() -> impl Strategy<Value = AccountEvent> {
    prop_oneof![
        ".{0,8}".prop_map(|account_id| AccountEvent::AccountOpened { account_id }),
        (any::<i64>(), ".{0,8}").prop_map(|(amount, operation_id)| {
            AccountEvent::FundsDeposited {
                amount,
                operation_id,
            }
        }),
        (any::<i64>(), ".{0,8}", any::<i64>()).prop_map(|(amount, effect_key, at)| {
            AccountEvent::CreditReserved {
                amount,
                effect_key,
                requested_at: Timestamp(at),
            }
        }),
    ]
}

fn order_event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        (".{0,8}", ".{0,8}", any::<i64>()).prop_map(|(order_id, customer_id, amount)| {
            OrderEvent::OrderCreated {
                order_id,
                customer_id,
                amount,
                effect_key: "k".into(),
            }
        }),
        (".{0,8}", ".{0,8}")
            .prop_map(|(order_id, reason)| OrderEvent::OrderRejected { order_id, reason }),
        ".{0,8}".prop_map(|order_id| OrderEvent::OrderConfirmed { order_id }),
    ]
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, bool)>> {
    prop::collection::vec((any::<usize>(), 32u8..127, any::<bool>()), 0..5)
}

proptest! {
    #[test]
    fn random_text_never_panics_a_decoder(text in "(?s).{0,200}") {
        let _ = account::decode(&text, &BOOKED);
        let _ = order::decode(&text, &BOOKED);
    }

    #[test]
    fn an_edited_account_event_decodes_to_what_it_encodes(
        event in account_event(), edits in edits(), cut in prop::option::of(any::<usize>()),
    ) {
        prop_assert_eq!(account::decode(&account::encode(&event), &BOOKED).unwrap(), event.clone());
        if let Some(text) = edited(account::encode(&event), &edits, cut)
            && let Ok(decoded) = account::decode(&text, &BOOKED)
        {
            prop_assert_eq!(account::decode(&account::encode(&decoded), &BOOKED).unwrap(), decoded);
        }
    }

    #[test]
    fn an_edited_order_event_decodes_to_what_it_encodes(
        event in order_event(), edits in edits(), cut in prop::option::of(any::<usize>()),
    ) {
        prop_assert_eq!(order::decode(&order::encode(&event), &BOOKED).unwrap(), event.clone());
        if let Some(text) = edited(order::encode(&event), &edits, cut)
            && let Ok(decoded) = order::decode(&text, &BOOKED)
        {
            prop_assert_eq!(order::decode(&order::encode(&decoded), &BOOKED).unwrap(), decoded);
        }
    }
}
