//! End-to-end scenarios: the `saga` binary as separate processes, a real nats-server and
//! real databases (SQLite files, a throwaway PostgreSQL cluster).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_callers;
mod bench;
mod browser;
mod chaos;
mod cli;
mod copies;
mod definitions;
mod dev;
mod failures;
mod health;
mod passbook;
mod place_order;
mod projections;
mod retention;
mod security;
mod shutdown;
mod signals;
mod system;
mod telemetry;
