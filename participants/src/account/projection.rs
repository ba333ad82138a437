//! The `accounts` projection: each account's balances and version, the fold of its
//! `account_events`.

use super::events::{self, Balances};
use crate::participant::Error;
use crate::projection::Projection;
use saga_protocol::Timestamp;
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
    const NAME: &'static str = "accounts";

    async fn keys(conn: &mut AnyConnection, after: &str, limit: i64) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT account_id FROM (\
               SELECT DISTINCT account_id FROM account_events WHERE account_id > $1 \
               UNION SELECT account_id FROM accounts WHERE account_id > $1\
             ) AS ids ORDER BY account_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?)
    }

    async fn lock(tx: &mut AnyConnection, key: &str) -> Result<(), Error> {
        // The row every append updates `WHERE version = …`.
        sqlx::query("UPDATE accounts SET version = version WHERE account_id = $1")
            .bind(key)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn expected(
        tx: &mut AnyConnection,
        key: &str,
    ) -> Result<Result<Option<Row>, String>, Error> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT sequence, payload, occurred_at FROM account_events WHERE account_id = $1 \
             ORDER BY sequence",
        )
        .bind(key)
        .fetch_all(tx)
        .await?;
        let mut balances = Balances::default();
        for ((sequence, payload, booked), n) in rows.iter().zip(1i64..) {
            if *sequence != n {
                return Ok(Err(format!(
                    "the log has event {sequence} where event {n} should be"
                )));
            }
            let stored = saga_protocol::upcast::Stored {
                recorded_at: Timestamp(*booked),
            };
            match events::decode(payload, &stored) {
                Ok(event) => balances = balances.apply(&event),
                Err(e) => return Ok(Err(format!("event {sequence}: {e}"))),
            }
        }
        Ok(Ok(rows.last().map(|(version, ..)| Row {
            balances,
            version: *version,
        })))
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
