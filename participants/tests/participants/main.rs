//! Integration tests of the participants: a real nats-server per test and a real database,
//! SQLite and PostgreSQL running the same test bodies (`sqlite::…`, `postgres::…`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod account;
mod admin;
mod dead_letters;
mod inbox;
mod inventory;
mod old_events;
mod order;
mod passbook;
mod projections;
mod retention;
