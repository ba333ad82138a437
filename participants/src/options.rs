//! What a participant process is ([`Kind`]) and how it is configured ([`Options`]).
//!
//! ```
//! use saga_participants::{Kind, Options};
//!
//! let kind: Kind = "account".parse().unwrap();
//! assert_eq!(kind.to_string(), "account");
//! let options: Options = serde_json::from_str(r#"{"database_url": "sqlite:account.db"}"#).unwrap();
//! assert_eq!(options.concurrency, 64);
//! ```

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Which participant a process runs. Its name is the second token of its command subjects
/// (`saga.cmd.{kind}.>`), its reply subject and its consumer name (`participant-{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The event-sourced bank account: deposits, credit reservations and releases.
    Account,
    /// The order lifecycle: pending, approved, rejected, cancelled.
    Order,
    /// The seats of shows: held by reservations, released, sold.
    Inventory,
}

impl Kind {
    /// The name used in subjects, e.g. `account`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Order => "order",
            Kind::Inventory => "inventory",
        }
    }

    /// Name of the durable JetStream consumer shared by every instance of this participant.
    pub fn consumer_name(self) -> String {
        crate::participant::consumer_name(self.as_str())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a [`Kind`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown participant `{0}`: expected `account`, `order` or `inventory`")]
    UnknownKind(String),
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "account" => Ok(Kind::Account),
            "order" => Ok(Kind::Order),
            "inventory" => Ok(Kind::Inventory),
            other => Err(Error::UnknownKind(other.to_string())),
        }
    }
}

/// Configuration of a participant process. Every field has a default, so a partial TOML or
/// JSON document deserialises.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Options {
    /// NATS server to connect to, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// The NKey seed file this process authenticates to NATS with, as the participant's own
    /// user (see [`saga_protocol::auth`]).
    pub nats_nkey: Option<std::path::PathBuf>,
    /// Connect to NATS without credentials; without it, a missing `nats_nkey` is an error.
    pub nats_no_auth: bool,
    /// The CA the NATS server\'s certificate must be signed by; with it, TLS only.
    pub nats_ca: Option<std::path::PathBuf>,
    /// The participant's own database: `sqlite:<path>` (created when missing) or
    /// `postgres://…`. Give each participant its own.
    pub database_url: String,
    /// Order participant only: an order whose amount is above this is rejected on approval.
    pub review_limit: i64,
    /// How many commands are handled at the same time.
    pub concurrency: usize,
    /// Replicas of the protocol streams when this process creates them (1, or 3 in a cluster).
    pub stream_replicas: usize,
    /// Where to serve the health endpoints (`/livez`, `/readyz`, see [`crate::health`]) and
    /// `GET /metrics` (Prometheus text); no HTTP server when `None`.
    pub listen: Option<SocketAddr>,
    /// How long a command held by an instance that died waits before another instance gets
    /// it: the consumer's ack wait and the pull requests' expiry
    /// (see [`saga_protocol::consumers`]).
    pub failover_after: Duration,
    /// The largest command this process decodes, in bytes; a larger one is dead-lettered
    /// with the reason (see [`saga_protocol::limits`]).
    pub max_message: usize,
    /// A command sent longer ago than this and not in the inbox is dead-lettered, not
    /// applied; an inbox entry is kept this long plus twice `max_clock_skew` (see
    /// [`crate::retention`]). Zero: every entry is kept and no command is refused.
    pub inbox_window: Duration,
    /// How far any clock of the system may be off.
    pub max_clock_skew: Duration,
    /// The account's statement periods: their length, where they start past midnight UTC,
    /// and how long after its end a period still takes what occurred in it (see
    /// [`crate::account::passbook`]).
    pub statement_period: Duration,
    pub statement_cutoff: Duration,
    pub statement_max_delay: Duration,
    /// What a handled command survives: a process crash, or a power loss too.
    pub durability: saga_sql::Durability,
}

impl Options {
    /// The statement periods these settings give.
    pub fn statement_periods(&self) -> crate::account::passbook::Periods {
        crate::account::passbook::Periods {
            length: self.statement_period,
            cutoff: self.statement_cutoff,
            max_delay: self.statement_max_delay,
        }
    }

    /// The inbox window these settings give.
    pub fn inbox_window(&self) -> crate::retention::InboxWindow {
        crate::retention::InboxWindow {
            window: self.inbox_window,
            max_clock_skew: self.max_clock_skew,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nats_url: "nats://127.0.0.1:4222".to_string(),
            nats_nkey: None,
            nats_no_auth: false,
            nats_ca: None,
            database_url: "sqlite:participant.db".to_string(),
            review_limit: 1_000_000,
            concurrency: 64,
            stream_replicas: 1,
            listen: None,
            failover_after: saga_protocol::consumers::DEFAULT_FAILOVER_AFTER,
            max_message: saga_protocol::limits::DEFAULT_MAX_MESSAGE,
            inbox_window: crate::retention::DEFAULT_WINDOW,
            max_clock_skew: crate::retention::DEFAULT_MAX_CLOCK_SKEW,
            statement_period: crate::account::passbook::DEFAULT_LENGTH,
            statement_cutoff: Duration::ZERO,
            statement_max_delay: crate::account::passbook::DEFAULT_MAX_DELAY,
            durability: saga_sql::Durability::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_round_trips_through_its_name() {
        for kind in [Kind::Account, Kind::Order, Kind::Inventory] {
            assert_eq!(kind.to_string().parse::<Kind>().ok(), Some(kind));
        }
        assert!("bank".parse::<Kind>().is_err());
    }
}
