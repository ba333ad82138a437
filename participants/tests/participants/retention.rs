//! The inbox window: a command sent longer ago than the window that the inbox does not know
//! is dead-lettered and not applied, one it knows is answered however old, and entries past
//! the window (and twice the clock skew) are pruned by the running participant.

use crate::account::reserve;
use crate::harness::{Backend, DEADLINE, Database, Participant, answers, output};
use saga_participants::retention::{self, InboxWindow};
use saga_participants::{Kind, Options, admin, store};
use saga_protocol::{CommandEnvelope, Timestamp, subjects};
use saga_testkit::wait_for;
use std::time::Duration;
use uuid::Uuid;

crate::both_backends!(
    a_command_older_than_the_window_is_dead_lettered_unapplied,
    an_old_copy_of_a_handled_command_gets_its_recorded_reply,
    a_copy_arriving_after_its_entry_was_pruned_is_refused,
    a_prune_deletes_only_entries_past_the_window_and_twice_the_skew,
);

const HOUR: Duration = Duration::from_secs(3_600);

fn an_hour_window() -> Options {
    Options {
        inbox_window: HOUR,
        max_clock_skew: Duration::from_secs(60),
        ..Options::default()
    }
}

/// `command` as if the orchestrator had decided it `ago`.
fn sent_ago(mut command: CommandEnvelope, ago: Duration) -> CommandEnvelope {
    let ago = i64::try_from(ago.as_millis()).unwrap();
    command.sent_at = Timestamp(Timestamp::now().millis() - ago);
    command
}

async fn dead_letters(p: &Participant) -> u64 {
    let mut dlq =
        p.js.get_stream(subjects::DLQ_STREAM)
            .await
            .expect("dlq stream");
    dlq.info().await.expect("info").state.messages
}

async fn in_inbox(store: &store::Store, command: &CommandEnvelope) -> bool {
    let mut conn = store.pool().acquire().await.expect("connection");
    store::recorded(&mut conn, command.message_id.as_str())
        .await
        .expect("inbox read")
        .is_some()
}

async fn balance(p: &Participant, customer: &str) -> (i64, i64) {
    let b = admin::balance(&p.client, customer).await.expect("balance");
    (b.available, b.reserved)
}

/// Its inbox entry may have been pruned, so applying it could apply it twice: it is refused
/// with the reason, the next command is applied, and nothing of it is recorded.
async fn a_command_older_than_the_window_is_dead_lettered_unapplied(backend: Backend) {
    let p = Participant::start_with(Kind::Account, backend, an_hour_window()).await;
    admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    let stale = sent_ago(reserve(Uuid::new_v4(), 1, "alice", 30), 2 * HOUR);
    p.publish(&stale, stale.message_id.as_str()).await;
    let fresh = sent_ago(reserve(Uuid::new_v4(), 1, "alice", 5), HOUR / 2);
    p.publish(&fresh, fresh.message_id.as_str()).await;

    assert_eq!(output(&p.reply(&fresh).await)["reserved"], 5);
    let (reason, payload) = p.dead_letter(1).await;
    assert_eq!(
        reason,
        format!(
            "command {} was sent at {}, more than the inbox window (1h) ago, and is not in \
             the inbox: its record may have been pruned, so it is not applied",
            stale.message_id, stale.sent_at
        )
    );
    assert_eq!(payload, stale.encode());
    assert!(p.stored_replies(&stale.message_id).is_empty());
    assert!(!in_inbox(&p.db.store().await, &stale).await);
    assert_eq!(balance(&p, "alice").await, (95, 5));
    assert_eq!(dead_letters(&p).await, 1);
    p.stop().await;
}

/// A copy of a handled command is answered from the inbox, not checked against the window.
async fn an_old_copy_of_a_handled_command_gets_its_recorded_reply(backend: Backend) {
    let p = Participant::start_with(Kind::Account, backend, an_hour_window()).await;
    admin::open_account(&p.client, "bob", 100)
        .await
        .expect("open");
    let mut wire = p.wire().await;
    let handled = reserve(Uuid::new_v4(), 1, "bob", 40);
    p.publish(&handled, "first").await;
    let first = p.reply(&handled).await;
    // The same command (same message id) sent two hours ago, published under a header of
    // its own so that JetStream keeps it, as a copy from before its deduplication window.
    let copy = sent_ago(handled.clone(), 2 * HOUR);
    p.publish(&copy, "second").await;

    let answers = answers(&mut wire, &handled.message_id, 2).await;
    assert_eq!(answers[0], first);
    assert_eq!(answers[1], first);
    assert_eq!(balance(&p, "bob").await, (60, 40));
    assert_eq!(dead_letters(&p).await, 0);
    p.stop().await;
}

/// The participant prunes its own inbox; a copy of the command delivered after that is older
/// than the window by then, so it is dead-lettered rather than applied a second time.
async fn a_copy_arriving_after_its_entry_was_pruned_is_refused(backend: Backend) {
    let options = Options {
        inbox_window: Duration::from_secs(2),
        max_clock_skew: Duration::ZERO,
        ..Options::default()
    };
    let p = Participant::start_with(Kind::Account, backend, options).await;
    admin::open_account(&p.client, "carol", 100)
        .await
        .expect("open");
    let command = reserve(Uuid::new_v4(), 1, "carol", 25);
    p.publish(&command, "first").await;
    assert_eq!(output(&p.reply(&command).await)["reserved"], 25);
    let store = p.db.store().await;
    assert!(in_inbox(&store, &command).await);

    wait_for("the entry pruned", DEADLINE, || {
        let (store, command) = (&store, &command);
        async move { (!in_inbox(store, command).await).then_some(()) }
    })
    .await
    .expect("the participant prunes its inbox");
    p.publish(&command, "second").await;

    let (reason, payload) = p.dead_letter(1).await;
    assert!(
        reason.contains("more than the inbox window (2s) ago"),
        "{reason}"
    );
    assert_eq!(payload, command.encode());
    assert_eq!(p.stored_replies(&command.message_id).len(), 1);
    assert_eq!(balance(&p, "carol").await, (75, 25));
    p.stop().await;
}

async fn a_prune_deletes_only_entries_past_the_window_and_twice_the_skew(backend: Backend) {
    let db = Database::new(backend);
    let store = db.store().await.with_inbox_window(InboxWindow {
        window: Duration::from_secs(100),
        max_clock_skew: Duration::from_secs(5),
    });
    let now = Timestamp(10_000_000);
    let mut tx = store.begin().await.expect("begin");
    // Received 111 s, 110 s and 109 s before `now`: only the first is past 100 s + 2 × 5 s.
    for (id, received) in [
        ("old", 9_889_000),
        ("edge", 9_890_000),
        ("young", 9_891_000),
    ] {
        store::record(&mut tx, id, "{}", Timestamp(received))
            .await
            .expect("record");
    }
    tx.commit().await.expect("commit");

    assert_eq!(retention::prune(&store, now).await.expect("prune"), 1);
    let mut conn = store.pool().acquire().await.expect("connection");
    for (id, kept) in [("old", false), ("edge", true), ("young", true)] {
        let found = store::recorded(&mut conn, id).await.expect("read");
        assert_eq!(found.is_some(), kept, "{id}");
    }
    drop(conn);
    let off = store.clone().with_inbox_window(InboxWindow {
        window: Duration::ZERO,
        max_clock_skew: Duration::from_secs(5),
    });
    let much_later = Timestamp(now.millis() + 1_000_000_000);
    assert_eq!(retention::prune(&off, much_later).await.expect("prune"), 0);
    assert_eq!(retention::prune(&store, now).await.expect("prune"), 0);
}
