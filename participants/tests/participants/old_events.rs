//! An account an earlier build stored (version 1 events, rows as they were written, in
//! `fixtures/account_v1.json`) is still read, folded and acted on; what is written now is
//! written at the newest version of its type.

use crate::harness::{Backend, Participant, command, output};
use saga_participants::Kind;
use saga_participants::account::{RELEASE_CREDIT, events::AccountEvent, events::Balances, ledger};
use saga_protocol::{CommandKind, Timestamp};
use serde_json::{Value, json};
use uuid::Uuid;

crate::both_backends!(a_version_1_account_is_read_folded_and_acted_on);

const FIXTURE: &str = include_str!("fixtures/account_v1.json");
/// The saga whose reservation the fixture holds.
const SAGA: Uuid = Uuid::from_u128(0xa001);

/// Writes the fixture's rows as they are, through plain INSERTs (what the old build did).
async fn restore(p: &Participant) {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let store = p.db.store().await;
    for table in ["account_events", "accounts", "reservations"] {
        for row in fixture[table].as_array().unwrap() {
            let row = row.as_object().unwrap();
            let columns: Vec<&str> = row.keys().map(String::as_str).collect();
            let params: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                params.join(", ")
            );
            // Table and column names come from this test and its fixture only.
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in row.values() {
                insert = match value {
                    Value::Number(n) => insert.bind(n.as_i64()),
                    other => insert.bind(other.as_str().map(str::to_string)),
                };
            }
            insert.execute(store.pool()).await.unwrap();
        }
    }
}

async fn a_version_1_account_is_read_folded_and_acted_on(backend: Backend) {
    // Given an account an earlier build wrote, with a reservation of 40 still held.
    let p = Participant::start(Kind::Account, backend).await;
    restore(&p).await;

    // When the saga that reserved it compensates.
    let release = command(
        SAGA,
        "reserve",
        1,
        Kind::Account,
        RELEASE_CREDIT,
        CommandKind::Compensation,
        json!({ "customer_id": "vera", "amount": 40 }),
    );
    p.publish(&release, release.message_id.as_str()).await;
    let released = p.reply(&release).await;

    // Then the old reservation is released like any other.
    assert_eq!(output(&released)["released"], 40, "{released:?}");
    let store = p.db.store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    let events = ledger::events(&mut conn, "vera").await.unwrap();
    let account = ledger::load(&mut conn, "vera").await.unwrap().unwrap();
    assert_eq!(Balances::fold(&events), account.balances);
    assert_eq!(
        (account.balances.available, account.balances.reserved),
        (100, 0)
    );
    let key = format!("{SAGA}.reserve");
    assert_eq!(
        &events[2..],
        [
            // Version 1 did not record when the command was sent: read as when it was booked.
            AccountEvent::CreditReserved {
                amount: 40,
                effect_key: key.clone(),
                requested_at: Timestamp(1_764_000_060_000),
            },
            AccountEvent::CreditReleased {
                amount: 40,
                effect_key: key,
                requested_at: release.sent_at,
            },
        ]
    );
    // The old rows are untouched; the new one is written at version 2.
    let versions: Vec<(i64, String)> =
        sqlx::query_as("SELECT sequence, payload FROM account_events ORDER BY sequence")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let versions: Vec<(i64, i64)> = versions
        .iter()
        .map(|(s, p)| {
            let v: Value = serde_json::from_str(p).unwrap();
            (*s, v["schema_version"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(versions, [(1, 1), (2, 1), (3, 1), (4, 2)]);
    p.stop().await;
}
