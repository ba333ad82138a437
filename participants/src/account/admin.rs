//! The account participant's side of the admin requests: open, deposit, balance, balances,
//! statement.
//!
//! Opening is idempotent by customer id; a deposit is idempotent by operation id, recorded in
//! the inbox under `admin.deposit.{operation_id}` in the same transaction as the deposit.

use super::events::AccountEvent;
use super::ledger::{self, Account};
use super::passbook::{self, Periods};
use super::projection::Accounts;
use crate::admin::{Balance, Reply, Request};
use crate::participant::{Error, retry_conflicts};
use crate::projection;
use crate::store::{self, Store};
use saga_protocol::Timestamp;

fn balance(account: &Account) -> Balance {
    Balance {
        customer_id: account.account_id.clone(),
        available: account.balances.available,
        reserved: account.balances.reserved,
        deposited: account.balances.deposited,
    }
}

fn no_account(customer_id: &str) -> Reply {
    Reply::Error(format!("no account for customer `{customer_id}`"))
}

pub(super) async fn answer(
    store: &Store,
    periods: &Periods,
    request: Request,
) -> Result<Reply, Error> {
    match request {
        Request::Open {
            customer_id,
            initial_deposit,
        } => {
            if customer_id.trim().is_empty() {
                return Ok(Reply::Error("customer_id must not be empty".into()));
            }
            if initial_deposit < 0 {
                return Ok(Reply::Error(format!(
                    "initial_deposit must not be negative, got {initial_deposit}"
                )));
            }
            retry_conflicts(|| open(store, &customer_id, initial_deposit)).await
        }
        Request::Deposit {
            customer_id,
            amount,
            operation_id,
        } => {
            if amount <= 0 {
                return Ok(Reply::Error(format!(
                    "amount must be positive, got {amount}"
                )));
            }
            if operation_id.trim().is_empty() {
                return Ok(Reply::Error("operation_id must not be empty".into()));
            }
            retry_conflicts(|| deposit(store, &customer_id, amount, &operation_id)).await
        }
        Request::Balance { customer_id } => {
            let mut conn = store.pool().acquire().await?;
            Ok(match ledger::load(&mut conn, &customer_id).await? {
                Some(account) => Reply::ok(&balance(&account)),
                None => no_account(&customer_id),
            })
        }
        Request::Balances => {
            let mut conn = store.pool().acquire().await?;
            let accounts = ledger::all(&mut conn).await?;
            Ok(Reply::ok(&accounts.iter().map(balance).collect::<Vec<_>>()))
        }
        Request::Statement {
            customer_id,
            by,
            from,
            to,
        } => {
            if let (Some(from), Some(to)) = (from, to)
                && to < from
            {
                return Ok(Reply::Error(format!(
                    "`to` ({to}) is before `from` ({from}): a statement covers from..to"
                )));
            }
            let mut conn = store.pool().acquire().await?;
            let log = ledger::log(&mut conn, &customer_id).await?;
            if log.is_empty() {
                return Ok(no_account(&customer_id));
            }
            let entries = passbook::entries(&log, periods);
            Ok(Reply::ok(&passbook::statement(
                &customer_id,
                &entries,
                periods,
                by,
                from,
                to,
            )))
        }
        Request::Orders => Ok(Reply::Error(
            "`orders` is served by the order participant".into(),
        )),
        Request::CreateShow { .. } | Request::Shows => Ok(Reply::Error(
            "shows are served by the inventory participant".into(),
        )),
        Request::Verify { after, limit } => {
            projection::answer::<Accounts>(store, after, limit, false).await
        }
        Request::Rebuild { after, limit } => {
            projection::answer::<Accounts>(store, after, limit, true).await
        }
    }
}

async fn open(store: &Store, customer_id: &str, initial_deposit: i64) -> Result<Reply, Error> {
    let mut tx = store.begin().await?;
    if let Some(existing) = ledger::load(&mut tx, customer_id).await? {
        tx.rollback().await?;
        return Ok(Reply::ok(&balance(&existing)));
    }
    let now = Timestamp::now();
    // A concurrent open of the same id fails this insert: the rerun finds the account.
    let account = ledger::create(&mut tx, customer_id).await?;
    let mut events = vec![AccountEvent::AccountOpened {
        account_id: customer_id.to_string(),
    }];
    if initial_deposit > 0 {
        events.push(AccountEvent::FundsDeposited {
            amount: initial_deposit,
            operation_id: "open".to_string(),
        });
    }
    let account = ledger::append(&mut tx, &account, &events, now).await?;
    tx.commit().await?;
    tracing::info!(customer_id, initial_deposit, "account opened");
    Ok(Reply::ok(&balance(&account)))
}

async fn deposit(
    store: &Store,
    customer_id: &str,
    amount: i64,
    operation_id: &str,
) -> Result<Reply, Error> {
    let key = format!("admin.deposit.{operation_id}");
    let mut tx = store.begin().await?;
    if let Some(recorded) = store::recorded(&mut tx, &key).await? {
        tx.rollback().await?;
        return serde_json::from_str(&recorded)
            .map_err(|e| Error::Corrupt(format!("inbox reply of {key}: {e}")));
    }
    let Some(account) = ledger::load(&mut tx, customer_id).await? else {
        // Not recorded: the same operation may succeed once the account is opened.
        tx.rollback().await?;
        return Ok(no_account(customer_id));
    };
    let now = Timestamp::now();
    let event = AccountEvent::FundsDeposited {
        amount,
        operation_id: operation_id.to_string(),
    };
    let account = ledger::append(&mut tx, &account, &[event], now).await?;
    let reply = Reply::ok(&balance(&account));
    let encoded = serde_json::to_string(&reply).map_err(|e| Error::Corrupt(e.to_string()))?;
    store::record(&mut tx, &key, &encoded, now).await?;
    tx.commit().await?;
    Ok(reply)
}
