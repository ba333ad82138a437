//! The saga participants — the account and the order services — and the runtime they share.
//!
//! ```text
//! SAGA_COMMANDS ──▶ runtime ──▶ handler (tower) ──▶ account | order ──▶ own database
//!   saga.cmd.{kind}.>   │  decode, check        inbox + business change,
//!                       │  dead-letter bad input   one transaction
//!                       ▼
//!   saga.reply.{kind} (SAGA_REPLIES), then ack     saga.dlq.{kind} (SAGA_DLQ)
//! ```
//!
//! - [`participant`]: the [`Participant`] seam a participant implements.
//! - [`runtime`]: consume → decode → inbox → handle → reply → ack, for any [`Participant`].
//! - [`inbox`]: exactly once per message id, one transaction with the business change.
//! - [`batch`]: group commit, the commands in hand at one moment in one transaction.
//! - [`service`]: the tower service around it all, and its in-process layers.
//! - [`store`]: the database, migrations and the durable inbox table.
//! - [`account`], [`order`], [`inventory`]: the built-in participants; [`builtin`] runs them
//!   by [`Kind`]
//!   ([`run`] is the entry point of `saga participant`).
//! - [`admin`]: core NATS request/reply helpers to open and fund accounts and read state.
//! - [`health`]: `/livez` and `/readyz` for Kubernetes probes.
//! - [`metrics`]: the participant's metrics and its `/metrics` HTTP endpoint.
//!
//! Tables (one set per participant database): `inbox`, `account_events`, `accounts`,
//! `reservations`, `orders`, `order_events`, `seat_maps`, `seat_holds`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_participants::Error> {
//! use saga_participants::{Kind, Options, run};
//!
//! let options = Options { database_url: "sqlite:account.db".into(), ..Options::default() };
//! run(Kind::Account, options, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod account;
pub mod admin;
pub mod batch;
pub mod builtin;
pub mod health;
pub mod inbox;
pub mod inventory;
pub mod metrics;
pub mod options;
pub mod order;
pub mod participant;
pub mod projection;
pub mod retention;
pub mod runtime;
pub mod service;
pub mod store;
pub mod stored;

pub use builtin::{run, run_with_ready};
pub use options::{Kind, Options};
pub use participant::Participant;
pub use runtime::Error;
