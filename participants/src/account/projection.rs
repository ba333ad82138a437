//! The `accounts` projection: each account's balances and version, the fold of its
//! `account_events`.

use super::events::{self, AccountEvent, Balances};
use crate::participant::Error;
use crate::projection::Projection;
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;
use serde_json::{Value, json};
use sqlx::AnyConnection;

/// An `accounts` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub balances: Balances,
    /// Sequence of the last event folded.
    pub version: i64,
}

/// The account participant's projection.
pub struct Accounts;

impl Projection for Accounts {
    type Row = Row;
    type Event = AccountEvent;
    const NAME: &'static str = "accounts";
    const KEY: &'static str = "account_id";
    const LOG: &'static str = "account_events";
    const ROWS: &'static str = "accounts";
    const PROJECTED: &'static str = "TRUE";
    /// Every append updates the row `WHERE version = …`.
    const LOCKED: &'static str = "version";

    fn decode(payload: &str, stored: &Stored) -> Result<AccountEvent, String> {
        events::decode(payload, stored)
    }

    fn fold(events: &[(AccountEvent, Timestamp)]) -> Result<Option<Row>, String> {
        let balances = Balances::fold(events.iter().map(|(event, _)| event));
        let version = i64::try_from(events.len()).map_err(|e| e.to_string())?;
        Ok((version > 0).then_some(Row { balances, version }))
    }

    async fn stored(tx: &mut AnyConnection, key: &str) -> Result<Option<Row>, Error> {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT available, reserved, deposited, version FROM accounts WHERE account_id = $1",
        )
        .bind(key)
        .fetch_optional(tx)
        .await?;
        Ok(row.map(|(available, reserved, deposited, version)| Row {
            balances: Balances {
                available,
                reserved,
                deposited,
            },
            version,
        }))
    }

    fn columns(stored: &Row, expected: &Row) -> Vec<(&'static str, Value, Value)> {
        let (s, e) = (&stored.balances, &expected.balances);
        vec![
            ("available", json!(s.available), json!(e.available)),
            ("reserved", json!(s.reserved), json!(e.reserved)),
            ("deposited", json!(s.deposited), json!(e.deposited)),
            ("version", json!(stored.version), json!(expected.version)),
        ]
    }

    fn summary(row: &Row) -> Value {
        json!({
            "available": row.balances.available,
            "reserved": row.balances.reserved,
            "version": row.version,
        })
    }

    async fn write(tx: &mut AnyConnection, key: &str, row: Option<Row>) -> Result<(), Error> {
        let Some(row) = row else {
            sqlx::query("DELETE FROM accounts WHERE account_id = $1")
                .bind(key)
                .execute(tx)
                .await?;
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO accounts (account_id, available, reserved, deposited, version) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE SET \
             available = excluded.available, reserved = excluded.reserved, \
             deposited = excluded.deposited, version = excluded.version",
        )
        .bind(key)
        .bind(row.balances.available)
        .bind(row.balances.reserved)
        .bind(row.balances.deposited)
        .bind(row.version)
        .execute(tx)
        .await?;
        Ok(())
    }
}
