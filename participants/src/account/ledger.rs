//! SQL of the account participant: the event log with its `accounts` projection, and the
//! `reservations` keyed by effect key. Every function runs inside the caller's transaction.
//!
//! Appends use optimistic concurrency: events take the sequences after the version read, and
//! the projection is updated only `WHERE version = expected`. A writer that lost the race
//! gets [`Error::Conflict`] and its transaction is run again.

use super::events::{self, AccountEvent, Balances};
use crate::participant::Error;
use saga_protocol::Timestamp;
use sqlx::AnyConnection;

/// An account as the projection holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub balances: Balances,
    /// Sequence of the last event applied.
    pub version: i64,
}

type AccountRow = (String, i64, i64, i64, i64);

fn account(row: AccountRow) -> Account {
    let (account_id, available, reserved, deposited, version) = row;
    Account {
        account_id,
        balances: Balances {
            available,
            reserved,
            deposited,
        },
        version,
    }
}

/// The account `account_id`, if it is open.
pub async fn load(conn: &mut AnyConnection, account_id: &str) -> Result<Option<Account>, Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT account_id, available, reserved, deposited, version FROM accounts \
             WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(account))
}

/// Every account, by id.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Account>, Error> {
    let rows: Vec<AccountRow> = sqlx::query_as(
        "SELECT account_id, available, reserved, deposited, version FROM accounts \
         ORDER BY account_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(account).collect())
}

/// Creates the projection row of a new account at version 0; append `AccountOpened` next.
/// A concurrent open of the same id fails with a unique violation ([`Error::Conflict`]).
pub async fn create(conn: &mut AnyConnection, account_id: &str) -> Result<Account, Error> {
    sqlx::query(
        "INSERT INTO accounts (account_id, available, reserved, deposited, version) \
         VALUES ($1, 0, 0, 0, 0)",
    )
    .bind(account_id)
    .execute(conn)
    .await?;
    Ok(Account {
        account_id: account_id.to_string(),
        balances: Balances::default(),
        version: 0,
    })
}

/// Appends `new` to the log of `account` and updates its projection, both or neither.
pub async fn append(
    conn: &mut AnyConnection,
    account: &Account,
    new: &[AccountEvent],
    now: Timestamp,
) -> Result<Account, Error> {
    let mut balances = account.balances;
    let mut version = account.version;
    for event in new {
        version += 1;
        balances = balances.apply(event);
        sqlx::query(
            "INSERT INTO account_events (account_id, sequence, event_type, payload, occurred_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&account.account_id)
        .bind(version)
        .bind(event.event_type())
        .bind(events::encode(event))
        .bind(now.millis())
        .execute(&mut *conn)
        .await?;
    }
    let updated = sqlx::query(
        "UPDATE accounts SET available = $1, reserved = $2, deposited = $3, version = $4 \
         WHERE account_id = $5 AND version = $6",
    )
    .bind(balances.available)
    .bind(balances.reserved)
    .bind(balances.deposited)
    .bind(version)
    .bind(&account.account_id)
    .bind(account.version)
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "account {} moved past version {}",
            account.account_id, account.version
        )));
    }
    Ok(Account {
        account_id: account.account_id.clone(),
        balances,
        version,
    })
}

/// The events of `account_id`, oldest first (for audits and projection rebuilds).
pub async fn events(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<AccountEvent>, Error> {
    Ok(log(conn, account_id)
        .await?
        .into_iter()
        .map(|(_, event, _)| event)
        .collect())
}

/// The log of `account_id`, oldest first: each event with its sequence and when it was booked
/// (for the passbook).
pub async fn log(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<(i64, AccountEvent, Timestamp)>, Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT sequence, payload, occurred_at FROM account_events WHERE account_id = $1 \
         ORDER BY sequence",
    )
    .bind(account_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(sequence, payload, booked)| {
            let booked = Timestamp(booked);
            let stored = saga_protocol::upcast::Stored {
                recorded_at: booked,
            };
            let event = events::decode(&payload, &stored).map_err(Error::Corrupt)?;
            Ok((sequence, event, booked))
        })
        .collect()
}

/// What happened under an effect key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Reserved,
    Released,
    /// The release came first; the reservation it undoes must be refused.
    Tombstone,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Reserved => "reserved",
            Status::Released => "released",
            Status::Tombstone => "tombstone",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "reserved" => Ok(Status::Reserved),
            "released" => Ok(Status::Released),
            "tombstone" => Ok(Status::Tombstone),
            other => Err(Error::Corrupt(format!("reservation status `{other}`"))),
        }
    }
}

/// A row of `reservations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub effect_key: String,
    pub account_id: String,
    pub amount: i64,
    pub status: Status,
}

/// The reservation (or tombstone) under `effect_key`.
pub async fn reservation(
    conn: &mut AnyConnection,
    effect_key: &str,
) -> Result<Option<Reservation>, Error> {
    let row: Option<(String, i64, String)> =
        sqlx::query_as("SELECT account_id, amount, status FROM reservations WHERE effect_key = $1")
            .bind(effect_key)
            .fetch_optional(conn)
            .await?;
    row.map(|(account_id, amount, status)| {
        Ok(Reservation {
            effect_key: effect_key.to_string(),
            account_id,
            amount,
            status: Status::parse(&status)?,
        })
    })
    .transpose()
}

/// Inserts `reservation`; a concurrent insert under the same key is a [`Error::Conflict`].
pub async fn insert_reservation(
    conn: &mut AnyConnection,
    reservation: &Reservation,
    now: Timestamp,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO reservations (effect_key, account_id, amount, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&reservation.effect_key)
    .bind(&reservation.account_id)
    .bind(reservation.amount)
    .bind(reservation.status.as_str())
    .bind(now.millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the reservation under `effect_key` from `from` to `to`, or fails with a conflict.
pub async fn set_status(
    conn: &mut AnyConnection,
    effect_key: &str,
    from: Status,
    to: Status,
    now: Timestamp,
) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE reservations SET status = $1, updated_at = $2 WHERE effect_key = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now.millis())
    .bind(effect_key)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "reservation {effect_key} is no longer {}",
            from.as_str()
        )));
    }
    Ok(())
}
