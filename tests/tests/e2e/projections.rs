//! The event store over a restart and a schema change, end to end: sagas in flight when
//! every process is killed, the account log left as the build before its version 2 wrote it
//! (`CreditReserved` and `CreditReleased` at version 1), everything started again. The old
//! sagas are read and finish, `saga projections verify` finds the read models equal to the
//! fold of their logs, and after one read model of each service is corrupted in SQL, verify
//! lists each difference and exits non-zero, and `saga projections rebuild` restores them.

use crate::system::{Backend, Service, System};
use saga_participants::admin;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("database")
}

/// Rewrites every `CreditReserved` and `CreditReleased` row of the account log in its
/// version 1 shape (no `requested_at`), as a build before version 2 stored it. Returns how
/// many rows it rewrote.
async fn as_version_1(url: &str) -> usize {
    let pool = pool(url).await;
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT account_id, sequence, payload FROM account_events \
         WHERE event_type IN ('CreditReserved', 'CreditReleased')",
    )
    .fetch_all(&pool)
    .await
    .expect("account events");
    for (account, sequence, payload) in &rows {
        let mut event: Value = serde_json::from_str(payload).expect("JSON payload");
        assert_eq!(event["schema_version"], 2, "{event}");
        let fields = event.as_object_mut().expect("an object");
        fields.remove("requested_at").expect("a version 2 row");
        fields.insert("schema_version".into(), 1.into());
        sqlx::query(
            "UPDATE account_events SET payload = $1 WHERE account_id = $2 AND sequence = $3",
        )
        .bind(event.to_string())
        .bind(account)
        .bind(sequence)
        .execute(&pool)
        .await
        .expect("rewrite as version 1");
    }
    pool.close().await;
    rows.len()
}

async fn execute(url: &str, statement: &str) {
    let pool = pool(url).await;
    let done = sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&pool)
        .await
        .expect("corrupting statement");
    assert_eq!(done.rows_affected(), 1, "{statement}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_logs_are_read_after_a_restart_and_a_corrupted_read_model_is_rebuilt() {
    let mut system = System::start(Backend::Sqlite).await;
    system.open_account("ada", 1_000_000).await;
    // Sagas that ran to the end before the stop, whose credit rows become version 1.
    let mut ids = Vec::new();
    for amount in 1..=5 {
        ids.push(system.start_saga("ada", amount).await);
    }
    let ended = system.wait_terminal(&ids, LONG).await;
    assert!(ended.values().all(|s| s == "completed"), "{ended:?}");
    // And sagas in flight when everything stops: the account is down, so they wait on it.
    system.kill(Service::Account);
    let mut waiting = Vec::new();
    for amount in 10..20 {
        waiting.push(system.start_saga("ada", amount).await);
    }
    let kill = system.kill_in_flight(Service::Orchestrator).await;
    system.kill(Service::Order);
    assert!(
        waiting.iter().all(|id| kill.in_flight.contains(id)),
        "every waiting saga was in flight when the orchestrator was killed"
    );
    let old = as_version_1(system.database(Service::Account)).await;
    assert_eq!(old, 5, "one credit reservation per finished saga");

    // Everything starts again: the old rows are read and the sagas in flight finish.
    for service in [Service::Account, Service::Order, Service::Orchestrator] {
        system.spawn(service);
    }
    system.wait_ready().await;
    ids.extend(&waiting);
    let ended = system.wait_terminal(&ids, LONG).await;
    assert!(ended.values().all(|s| s == "completed"), "{ended:?}");
    assert_eq!(system.assert_spanned(&kill).await, waiting.len());
    let ada = admin::balance(&system.client, "ada")
        .await
        .expect("balance");
    let spent: i64 = (1..=5).chain(10..20).sum();
    assert_eq!((ada.available, ada.reserved), (1_000_000 - spent, spent));

    let (clean, out, err) = system.cli_exit(&["projections", "verify"]);
    assert!(clean, "{out}{err}");
    for line in [
        "sagas: 15 checked, no difference",
        "accounts: 1 checked, no difference",
        "orders: 15 checked, no difference",
    ] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }

    // One row of each read model is corrupted behind the services' backs.
    let corrupted = ids[0];
    let order: String = {
        let pool = pool(system.database(Service::Order)).await;
        sqlx::query_scalar("SELECT MIN(order_id) FROM orders")
            .fetch_one(&pool)
            .await
            .expect("an order")
    };
    execute(
        system.database(Service::Orchestrator),
        &format!("UPDATE sagas SET status = 'compensating' WHERE saga_id = '{corrupted}'"),
    )
    .await;
    execute(
        system.database(Service::Account),
        "UPDATE accounts SET available = available + 7 WHERE account_id = 'ada'",
    )
    .await;
    execute(
        system.database(Service::Order),
        &format!("UPDATE orders SET status = 'cancelled' WHERE order_id = '{order}'"),
    )
    .await;

    let (clean, out, _) = system.cli_exit(&["projections", "verify"]);
    assert!(!clean, "verify must fail on a difference:\n{out}");
    for (projection, key, field) in [
        ("sagas", corrupted.to_string(), "status"),
        ("accounts", "ada".to_string(), "available"),
        ("orders", order.clone(), "status"),
    ] {
        let row = out
            .lines()
            .find(|l| l.contains(projection) && l.contains(&key) && l.contains(field));
        assert!(row.is_some(), "{projection} {key} {field} in:\n{out}");
    }
    assert!(
        out.contains("\"compensating\"") && out.contains("\"completed\""),
        "{out}"
    );

    for (projection, summary) in [
        ("sagas", "sagas: 15 checked, 1 rebuilt, 1 difference"),
        ("accounts", "accounts: 1 checked, 1 rebuilt, 1 difference"),
        ("orders", "orders: 15 checked, 1 rebuilt, 1 difference"),
    ] {
        let out = system.cli(&["projections", "rebuild", projection, "--limit", "4"]);
        assert!(out.contains(summary), "{summary} in:\n{out}");
    }
    let (clean, out, err) = system.cli_exit(&["projections", "verify"]);
    assert!(clean, "{out}{err}");

    // The services go on from the rebuilt rows.
    let next: Uuid = system.start_saga("ada", 1_000).await;
    let ended = system.wait_terminal(&[next], LONG).await;
    assert_eq!(ended[&next], "completed");
    let ada = admin::balance(&system.client, "ada")
        .await
        .expect("balance");
    assert_eq!(ada.available, 1_000_000 - spent - 1_000);
}
