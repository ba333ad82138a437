//! The saga orchestrator: runs sagas declared in `sagas/*.toml`.
//!
//! - [`store`]: the append-only event log (SQLite or PostgreSQL) and its read model;
//! - [`transport`]: commands out and replies in (NATS JetStream, or in memory for tests);
//! - [`partitions`]: which replica owns which sagas' timers;
//! - [`clock`]: where the runtime reads the time;
//! - [`runtime`]: the loop load → fold → decide → append → act, and recovery;
//! - [`projections`]: the read model checked against the log and rebuilt from it;
//! - [`api`]: the HTTP API and serving it;
//! - [`watch`]: a server-sent feed of sagas reaching a terminal status.
//!
//! The saga logic itself is the pure `saga-core` crate; the wire contract is `saga-protocol`;
//! the `saga` command line that runs it is the `saga-cli` crate.

pub mod api;
pub mod clock;
pub mod partitions;
pub mod projections;
pub mod runtime;
pub mod store;
pub mod transport;
pub mod watch;
