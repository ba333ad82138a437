//! The account participant: an event-sourced bank account that reserves and releases credit
//! for sagas.
//!
//! | command         | kind         | payload                  | success output                          |
//! |-----------------|--------------|--------------------------|-----------------------------------------|
//! | `ReserveCredit` | forward      | `{customer_id, amount}`  | `{customer_id, amount, reserved}`       |
//! | `ReleaseCredit` | compensation | (ignored: uses the reservation) | `{customer_id, amount, released}` |
//!
//! Effects are keyed by the envelope's `effect_key` in `reservations`: a retried
//! `ReserveCredit` of the same step finds its reservation and answers the same output; a
//! `ReleaseCredit` that finds nothing leaves a tombstone and succeeds, and a `ReserveCredit`
//! that later finds the tombstone is rejected and reserves nothing (DESIGN guarantee 6).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use saga_participants::{account::Account, store::Store};
//! let account = Account::new(Store::open("sqlite:account.db", 4).await?);
//! # Ok(()) }
//! ```

mod admin;
pub mod events;
pub mod ledger;
pub mod passbook;
pub mod projection;

use crate::participant::{self, Error, Participant, payload, rejected, succeeded};
use crate::{Kind, store::Store};
use events::AccountEvent;
use ledger::{Reservation, Status};
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, Timestamp};
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyConnection;
use std::future::Future;

/// Reserves credit on an account (forward).
pub const RESERVE_CREDIT: &str = "ReserveCredit";
/// Releases the credit reserved under the same effect key (compensation of `ReserveCredit`).
pub const RELEASE_CREDIT: &str = "ReleaseCredit";

/// The account participant.
#[derive(Debug, Clone)]
pub struct Account {
    store: Store,
    periods: passbook::Periods,
}

impl Account {
    pub fn new(store: Store) -> Self {
        Account {
            store,
            periods: passbook::Periods::default(),
        }
    }

    /// The same participant, its statements cut into `periods`.
    pub fn with_periods(self, periods: passbook::Periods) -> Self {
        Account { periods, ..self }
    }
}

#[derive(Debug, Deserialize)]
struct ReserveCredit {
    customer_id: String,
    amount: i64,
}

impl Participant for Account {
    const NAME: &'static str = Kind::Account.as_str();
    const COMMANDS: &'static [(&'static str, CommandKind)] = &[
        (RESERVE_CREDIT, CommandKind::Forward),
        (RELEASE_CREDIT, CommandKind::Compensation),
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
            RESERVE_CREDIT => reserve(tx, command, now).await,
            RELEASE_CREDIT => release(tx, command, now).await,
            other => Ok(rejected(format!("unknown account command `{other}`"))),
        }
    }

    fn admin(
        &self,
        request: crate::admin::Request,
    ) -> impl Future<Output = Result<crate::admin::Reply, Error>> + Send + '_ {
        admin::answer(&self.store, &self.periods, request)
    }
}

fn reserved_output(reservation: &Reservation) -> Outcome {
    succeeded(json!({
        "customer_id": reservation.account_id,
        "amount": reservation.amount,
        "reserved": reservation.amount,
    }))
}

async fn reserve(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    if let Some(existing) = ledger::reservation(tx, key).await? {
        return Ok(match existing.status {
            // A retry of the same step (new attempt, new message id): the effect exists.
            Status::Reserved => reserved_output(&existing),
            Status::Released => rejected(format!(
                "the credit of {key} was already reserved and released (compensated)"
            )),
            Status::Tombstone => rejected(format!("{key} was compensated before it arrived")),
        });
    }
    let args: ReserveCredit = match payload(command) {
        Ok(args) => args,
        Err(refusal) => return Ok(refusal),
    };
    if args.amount <= 0 {
        return Ok(rejected(format!(
            "amount must be positive, got {}",
            args.amount
        )));
    }
    let Some(account) = ledger::load(tx, &args.customer_id).await? else {
        return Ok(rejected(format!(
            "no account for customer `{}`",
            args.customer_id
        )));
    };
    let available = account.balances.available;
    if available < args.amount {
        return Ok(rejected(format!(
            "insufficient credit: available {available}, requested {}",
            args.amount
        )));
    }
    let reservation = Reservation {
        effect_key: key.to_string(),
        account_id: account.account_id.clone(),
        amount: args.amount,
        status: Status::Reserved,
    };
    // The key insert first: a concurrent retry or tombstone under this key conflicts here.
    ledger::insert_reservation(tx, &reservation, now).await?;
    let event = AccountEvent::CreditReserved {
        amount: args.amount,
        effect_key: key.to_string(),
        requested_at: command.sent_at,
    };
    ledger::append(tx, &account, &[event], now).await?;
    Ok(reserved_output(&reservation))
}

#[derive(Debug, Default, Deserialize)]
struct ReleaseCredit {
    #[serde(default)]
    customer_id: String,
}

async fn release(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    let Some(existing) = ledger::reservation(tx, key).await? else {
        // Compensation before the action: leave a tombstone so the late reserve is refused.
        let hint: ReleaseCredit = participant::payload(command).unwrap_or_default();
        let tombstone = Reservation {
            effect_key: key.to_string(),
            account_id: hint.customer_id,
            amount: 0,
            status: Status::Tombstone,
        };
        ledger::insert_reservation(tx, &tombstone, now).await?;
        return Ok(tombstone_output(&tombstone));
    };
    let released = |r: &Reservation| {
        succeeded(json!({
            "customer_id": r.account_id,
            "amount": r.amount,
            "released": r.amount,
        }))
    };
    match existing.status {
        Status::Released => Ok(released(&existing)),
        Status::Tombstone => Ok(tombstone_output(&existing)),
        Status::Reserved => {
            let account = ledger::load(tx, &existing.account_id)
                .await?
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "reservation {key} names missing account {}",
                        existing.account_id
                    ))
                })?;
            ledger::set_status(tx, key, Status::Reserved, Status::Released, now).await?;
            let event = AccountEvent::CreditReleased {
                amount: existing.amount,
                effect_key: key.to_string(),
                requested_at: command.sent_at,
            };
            ledger::append(tx, &account, &[event], now).await?;
            Ok(released(&existing))
        }
    }
}

fn tombstone_output(tombstone: &Reservation) -> Outcome {
    succeeded(json!({
        "customer_id": tombstone.account_id,
        "released": 0,
        "tombstone": true,
    }))
}
