//! The account participant over NATS: reservations, releases, rejections, duplicates and
//! compensation before the action.

use crate::harness::{Backend, Participant, answers, command, output, rejection};
use saga_participants::account::{RELEASE_CREDIT, RESERVE_CREDIT, events::Balances, ledger};
use saga_participants::{Kind, admin};
use saga_protocol::{CommandEnvelope, CommandKind};
use serde_json::json;
use uuid::Uuid;

crate::both_backends!(
    reserve_then_release,
    insufficient_credit_is_rejected,
    invalid_payload_is_rejected,
    duplicate_command_applies_once,
    retried_step_applies_once,
    compensation_before_action_leaves_tombstone,
);

pub(crate) fn reserve(saga: Uuid, attempt: u32, customer: &str, amount: i64) -> CommandEnvelope {
    let payload =
        json!({ "customer_id": customer, "amount": amount, "note": "extra fields are ignored" });
    command(
        saga,
        "reserve",
        attempt,
        Kind::Account,
        RESERVE_CREDIT,
        CommandKind::Forward,
        payload,
    )
}

fn release(saga: Uuid, customer: &str, amount: i64) -> CommandEnvelope {
    let payload = json!({ "customer_id": customer, "amount": amount });
    command(
        saga,
        "reserve",
        1,
        Kind::Account,
        RELEASE_CREDIT,
        CommandKind::Compensation,
        payload,
    )
}

async fn balance(p: &Participant, customer: &str) -> admin::Balance {
    let b = admin::balance(&p.client, customer).await.expect("balance");
    assert_eq!(
        b.available + b.reserved,
        b.deposited,
        "money is conserved: {b:?}"
    );
    b
}

/// The projection equals the fold of the account's events.
async fn assert_projection_matches_events(p: &Participant, customer: &str) {
    let store = p.db.store().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    let events = ledger::events(&mut conn, customer).await.expect("events");
    let account = ledger::load(&mut conn, customer)
        .await
        .expect("load")
        .expect("account");
    assert_eq!(Balances::fold(&events), account.balances);
    assert_eq!(account.version, events.len() as i64);
}

async fn reserve_then_release(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    let saga = Uuid::new_v4();

    let reserved = p
        .reply(&publish(&p, reserve(saga, 1, "alice", 30)).await)
        .await;
    assert_eq!(
        output(&reserved),
        json!({ "customer_id": "alice", "amount": 30, "reserved": 30 })
    );
    let b = balance(&p, "alice").await;
    assert_eq!((b.available, b.reserved, b.deposited), (70, 30, 100));

    let released = p
        .reply(&publish(&p, release(saga, "alice", 30)).await)
        .await;
    assert_eq!(output(&released)["released"], 30);
    let b = balance(&p, "alice").await;
    assert_eq!((b.available, b.reserved, b.deposited), (100, 0, 100));

    // Replies are stored under Nats-Msg-Id = the reply's message id.
    let stored = p.stored_replies(&released.command_id);
    assert_eq!(
        stored[0].nats_msg_id.as_deref(),
        Some(released.message_id.as_str())
    );
    assert_projection_matches_events(&p, "alice").await;
    p.stop().await;
}

async fn publish(p: &Participant, c: CommandEnvelope) -> CommandEnvelope {
    p.publish(&c, c.message_id.as_str()).await;
    c
}

async fn insufficient_credit_is_rejected(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "bob", 10)
        .await
        .expect("open");
    let reply = p
        .reply(&publish(&p, reserve(Uuid::new_v4(), 1, "bob", 50)).await)
        .await;
    assert_eq!(
        rejection(&reply),
        "insufficient credit: available 10, requested 50"
    );
    let b = balance(&p, "bob").await;
    assert_eq!((b.available, b.reserved), (10, 0));

    let unknown = p
        .reply(&publish(&p, reserve(Uuid::new_v4(), 1, "nobody", 1)).await)
        .await;
    assert!(rejection(&unknown).contains("no account"), "{unknown:?}");
    let zero = p
        .reply(&publish(&p, reserve(Uuid::new_v4(), 1, "bob", 0)).await)
        .await;
    assert!(rejection(&zero).contains("must be positive"), "{zero:?}");
    p.stop().await;
}

/// A valid envelope with a bad payload is answered Rejected (so the saga compensates),
/// not dead-lettered.
async fn invalid_payload_is_rejected(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    let saga = Uuid::new_v4();
    let bad = command(
        saga,
        "reserve",
        1,
        Kind::Account,
        RESERVE_CREDIT,
        CommandKind::Forward,
        json!({ "customer_id": "carol", "amount": "lots" }),
    );
    let reply = p.reply(&publish(&p, bad).await).await;
    let reason = rejection(&reply);
    assert!(
        reason.starts_with("invalid ReserveCredit payload"),
        "{reason}"
    );
    p.stop().await;
}

/// The same command delivered twice with different `Nats-Msg-Id` headers (JetStream's dedup
/// bypassed) applies once, and both deliveries are answered with the same reply.
async fn duplicate_command_applies_once(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "dave", 100)
        .await
        .expect("open");
    // Both answers are visible on the wire; the stream keeps one (same reply message id).
    let mut wire = p.wire().await;
    let c = reserve(Uuid::new_v4(), 1, "dave", 40);
    p.publish(&c, "first-header").await;
    p.publish(&c, "second-header").await;

    let answers = answers(&mut wire, &c.message_id, 2).await;
    assert_eq!(answers[0], answers[1]);
    assert_eq!(output(&answers[0])["reserved"], 40);
    let b = balance(&p, "dave").await;
    assert_eq!((b.available, b.reserved), (60, 40));
    assert_eq!(p.stored_replies(&c.message_id).len(), 1);
    assert_projection_matches_events(&p, "dave").await;
    p.stop().await;
}

/// A retried forward command of the same step (new attempt, new message id) finds the effect
/// under its effect key and answers the same output without reserving again.
async fn retried_step_applies_once(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "erin", 100)
        .await
        .expect("open");
    let saga = Uuid::new_v4();
    let first = p
        .reply(&publish(&p, reserve(saga, 1, "erin", 25)).await)
        .await;
    let second = p
        .reply(&publish(&p, reserve(saga, 2, "erin", 25)).await)
        .await;
    assert_ne!(first.message_id, second.message_id);
    assert_eq!(output(&first), output(&second));
    let b = balance(&p, "erin").await;
    assert_eq!((b.available, b.reserved), (75, 25));
    p.stop().await;
}

/// A release that overtakes its reservation leaves a tombstone and succeeds; the late
/// reservation is refused and nothing stays reserved.
async fn compensation_before_action_leaves_tombstone(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "frank", 100)
        .await
        .expect("open");
    let saga = Uuid::new_v4();
    let undo = p
        .reply(&publish(&p, release(saga, "frank", 20)).await)
        .await;
    assert_eq!(output(&undo)["tombstone"], true);

    let late = p
        .reply(&publish(&p, reserve(saga, 1, "frank", 20)).await)
        .await;
    assert!(
        rejection(&late).contains("compensated before it arrived"),
        "{late:?}"
    );
    let b = balance(&p, "frank").await;
    assert_eq!((b.available, b.reserved), (100, 0));

    let store = p.db.store().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    // The reply is published after the commit, so the row is there.
    let tombstone = ledger::reservation(&mut conn, &format!("{saga}.reserve"))
        .await
        .expect("query")
        .expect("tombstone row");
    assert_eq!(tombstone.status, ledger::Status::Tombstone);
    p.stop().await;
}
