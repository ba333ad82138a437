//! Operator and test helpers over core NATS request/reply: open and fund accounts, read
//! balances and orders. Not part of a saga, so not on JetStream.
//!
//! Requests go to [`ACCOUNT_SUBJECT`] or [`ORDER_SUBJECT`] as JSON `{"op": …}` ([`Request`]);
//! the participant answers `{"ok": …}` or `{"error": "…"}` ([`Reply`]). Every instance of a
//! participant serves its subject in one queue group, so each request is answered once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use saga_participants::admin;
//!
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! admin::open_account(&client, "alice", 100).await?;
//! let balance = admin::deposit(&client, "alice", 50, "top-up-1").await?;
//! assert_eq!(balance.available, 150);
//! # Ok(()) }
//! ```

use crate::account::passbook::{Clock, Statement};
use saga_protocol::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn occurred() -> Clock {
    Clock::Occurred
}

/// Admin subject of the account participant.
pub const ACCOUNT_SUBJECT: &str = "saga.admin.account";
/// Admin subject of the order participant.
pub const ORDER_SUBJECT: &str = "saga.admin.order";
/// Admin subject of the inventory participant.
pub const INVENTORY_SUBJECT: &str = "saga.admin.inventory";

/// The admin subject served by participant `participant`: `saga.admin.{participant}`.
pub fn subject(participant: &str) -> String {
    saga_protocol::subjects::admin(participant)
}

/// An admin request, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Opens an account; idempotent: on an existing account the deposit is not applied again.
    Open {
        customer_id: String,
        #[serde(default)]
        initial_deposit: i64,
    },
    /// Adds funds; idempotent by `operation_id` (recorded in the inbox).
    Deposit {
        customer_id: String,
        amount: i64,
        operation_id: String,
    },
    Balance {
        customer_id: String,
    },
    /// Every account.
    Balances,
    /// An account's passbook over `[from, to)` (ms since the epoch; either end open when
    /// absent) by one clock, with the correction notices of its late entries (see
    /// [`crate::account::passbook`]).
    Statement {
        customer_id: String,
        #[serde(default = "occurred")]
        by: Clock,
        #[serde(default)]
        from: Option<Timestamp>,
        #[serde(default)]
        to: Option<Timestamp>,
    },
    /// Every order.
    Orders,
    /// Creates a show with `capacity` seats; idempotent: an existing show is left as it is.
    CreateShow {
        show_id: String,
        capacity: i64,
    },
    /// Every show's seat map.
    Shows,
    /// Compares a page of the participant's read model (`accounts` or `orders`) with the
    /// fold of its log; changes nothing.
    Verify {
        /// The key the page starts after: the previous page's `next`.
        #[serde(default)]
        after: Option<String>,
        /// Keys per page, 1 to 5000 (default 500).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Rewrites, from the fold of their logs, the rows of a page of keys that differ from it.
    Rebuild {
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
}

/// An admin reply: `{"ok": value}` or `{"error": "reason"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ok(serde_json::Value),
    Error(String),
}

impl Reply {
    /// `Ok` with `value` serialised.
    pub fn ok<T: Serialize>(value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(format!("cannot serialise the answer: {e}")),
        }
    }
}

/// An account's balances. Invariant: `available + reserved == deposited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub customer_id: String,
    /// Funds that can be reserved.
    pub available: i64,
    /// Funds held by reservations of sagas in flight.
    pub reserved: i64,
    /// Everything ever deposited.
    pub deposited: i64,
}

/// An order as the order participant holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub amount: i64,
    /// `pending`, `approved`, `rejected` or `cancelled`.
    pub status: String,
    pub effect_key: String,
}

/// One way a key's row differs from the fold of its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The account id or the order id.
    pub key: String,
    /// The column (`available`, `status`, …); `row` for a row without a log or a log without
    /// a row; `log` for a log that cannot be folded (`stored` says why).
    pub field: String,
    /// What the read model holds.
    pub stored: serde_json::Value,
    /// What the fold of the log says.
    pub expected: serde_json::Value,
}

/// What a page of a verify or a rebuild found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectionPage {
    /// `accounts` or `orders`.
    pub projection: String,
    /// Keys compared on this page.
    pub checked: u64,
    /// Rows rewritten (0 for a verify).
    pub rebuilt: u64,
    /// Every difference found: for a rebuild, the ones it mended (a `log` one cannot be).
    pub differences: Vec<Difference>,
    /// Pass as `after` for the next page; `None` after the last.
    pub next: Option<String>,
}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No participant answered, or the request timed out.
    #[error("admin request on {subject} failed: {source}")]
    Request {
        subject: &'static str,
        #[source]
        source: async_nats::RequestError,
    },
    /// The participant answered with an error (unknown account, invalid amount, …).
    #[error("refused: {0}")]
    Refused(String),
    #[error("unreadable admin reply: {0}")]
    Decode(#[from] serde_json::Error),
}

async fn call<T: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &'static str,
    request: &Request,
) -> Result<T, Error> {
    let body = serde_json::to_vec(request)?;
    let message = client
        .request(subject, body.into())
        .await
        .map_err(|source| Error::Request { subject, source })?;
    match serde_json::from_slice::<Reply>(&message.payload)? {
        Reply::Ok(value) => Ok(serde_json::from_value(value)?),
        Reply::Error(reason) => Err(Error::Refused(reason)),
    }
}

/// Opens the account of `customer_id` with `initial_deposit`, or returns the existing one.
pub async fn open_account(
    client: &async_nats::Client,
    customer_id: &str,
    initial_deposit: i64,
) -> Result<Balance, Error> {
    let request = Request::Open {
        customer_id: customer_id.to_string(),
        initial_deposit,
    };
    call(client, ACCOUNT_SUBJECT, &request).await
}

/// Deposits `amount` once per `operation_id`; a repeat answers the balance recorded the first time.
pub async fn deposit(
    client: &async_nats::Client,
    customer_id: &str,
    amount: i64,
    operation_id: &str,
) -> Result<Balance, Error> {
    let request = Request::Deposit {
        customer_id: customer_id.to_string(),
        amount,
        operation_id: operation_id.to_string(),
    };
    call(client, ACCOUNT_SUBJECT, &request).await
}

/// The balances of `customer_id`.
pub async fn balance(client: &async_nats::Client, customer_id: &str) -> Result<Balance, Error> {
    let request = Request::Balance {
        customer_id: customer_id.to_string(),
    };
    call(client, ACCOUNT_SUBJECT, &request).await
}

/// The balances of every account, by customer id.
pub async fn balances(client: &async_nats::Client) -> Result<Vec<Balance>, Error> {
    call(client, ACCOUNT_SUBJECT, &Request::Balances).await
}

/// The passbook of `customer_id` over `[from, to)` by `by`, with its correction notices.
pub async fn statement(
    client: &async_nats::Client,
    customer_id: &str,
    by: Clock,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Statement, Error> {
    let request = Request::Statement {
        customer_id: customer_id.to_string(),
        by,
        from,
        to,
    };
    call(client, ACCOUNT_SUBJECT, &request).await
}

/// Every order, oldest first.
pub async fn orders(client: &async_nats::Client) -> Result<Vec<OrderView>, Error> {
    call(client, ORDER_SUBJECT, &Request::Orders).await
}

/// Creates show `show_id` with `capacity` seats, or returns the existing one's seat map.
pub async fn create_show(
    client: &async_nats::Client,
    show_id: &str,
    capacity: i64,
) -> Result<crate::inventory::seats::SeatMap, Error> {
    let request = Request::CreateShow {
        show_id: show_id.to_string(),
        capacity,
    };
    call(client, INVENTORY_SUBJECT, &request).await
}

/// Every show's seat map, by show.
pub async fn shows(
    client: &async_nats::Client,
) -> Result<Vec<crate::inventory::seats::SeatMap>, Error> {
    call(client, INVENTORY_SUBJECT, &Request::Shows).await
}

/// A page of the read model of the participant behind `subject` ([`ACCOUNT_SUBJECT`] or
/// [`ORDER_SUBJECT`]) compared with its log, or (`rebuild`) rewritten from it where it
/// differs: the keys after `after`, at most `limit`.
pub async fn projection(
    client: &async_nats::Client,
    subject: &'static str,
    rebuild: bool,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<ProjectionPage, Error> {
    let request = if rebuild {
        Request::Rebuild { after, limit }
    } else {
        Request::Verify { after, limit }
    };
    call(client, subject, &request).await
}
