//! Bad input goes to `SAGA_DLQ` with the reason, and the consumer keeps going.

use crate::harness::{Backend, DEADLINE, Participant, command, output};
use saga_participants::Kind;
use saga_participants::account::RESERVE_CREDIT;
use saga_participants::admin;
use saga_protocol::{CommandKind, headers, subjects};
use saga_testkit::wait_for;
use serde_json::json;
use uuid::Uuid;

crate::both_backends!(malformed_messages_are_dead_lettered);

async fn malformed_messages_are_dead_lettered(backend: Backend) {
    let p = Participant::start(Kind::Account, backend).await;
    admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    let subject = subjects::command("account", RESERVE_CREDIT);
    p.publish_raw(&subject, b"{ not json".to_vec()).await;

    let saga = Uuid::new_v4();
    let mut unknown = command(
        saga,
        "x",
        1,
        Kind::Account,
        "Teleport",
        CommandKind::Forward,
        json!({}),
    );
    unknown.effect_key = "unknown".into();
    p.publish(&unknown, "unknown-command").await;
    let mut stranger = command(
        saga,
        "y",
        1,
        Kind::Order,
        "CreateOrder",
        CommandKind::Forward,
        json!({}),
    );
    stranger.participant = "order".into();
    let stranger_subject = subjects::command("account", "CreateOrder");
    p.publish_raw(&stranger_subject, stranger.encode()).await;

    // The next good message is still processed.
    let good = command(
        saga,
        "reserve",
        1,
        Kind::Account,
        RESERVE_CREDIT,
        CommandKind::Forward,
        json!({ "customer_id": "alice", "amount": 5 }),
    );
    p.publish(&good, good.message_id.as_str()).await;
    assert_eq!(output(&p.reply(&good).await)["reserved"], 5);

    let dlq =
        p.js.get_stream(subjects::DLQ_STREAM)
            .await
            .expect("dlq stream");
    let messages = wait_for("three dead letters", DEADLINE, || {
        let dlq = dlq.clone();
        async move {
            let mut found = Vec::new();
            for seq in 1..=3 {
                found.push(dlq.get_raw_message(seq).await.ok()?);
            }
            Some(found)
        }
    })
    .await
    .expect("dead letters");

    // Tasks run concurrently, so dead letters are stored in any order: key them by the
    // original stream sequence (1 garbage, 2 unknown command, 3 wrong participant).
    let by_sequence = |seq: &str| {
        messages
            .iter()
            .find(|m| {
                m.headers
                    .get(headers::DLQ_ORIGINAL_SEQUENCE)
                    .map(|v| v.as_str())
                    == Some(seq)
            })
            .unwrap_or_else(|| panic!("dead letter of sequence {seq}"))
    };
    let header = |seq: &str, name: &str| -> String {
        by_sequence(seq)
            .headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    let garbage = by_sequence("1");
    assert_eq!(garbage.subject.as_str(), subjects::dead_letter("account"));
    assert_eq!(&garbage.payload[..], b"{ not json");
    let reason = header("1", headers::DLQ_REASON);
    assert!(reason.starts_with("not a valid envelope"), "{reason}");
    assert_eq!(header("1", headers::DLQ_ORIGINAL_SUBJECT), subject);
    assert_eq!(header("1", headers::DLQ_CONSUMER), "participant-account");
    assert!(header("2", headers::DLQ_REASON).contains("unknown command `Teleport`"));
    assert!(header("3", headers::DLQ_REASON).contains("addressed to participant `order`"));
    assert_eq!(dlq.clone().info().await.expect("info").state.messages, 3);
    p.stop().await;
}

/// Refused before it is decoded, so before any database work: one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_over_the_size_limit_is_dead_lettered_unread() {
    let backend = Backend::Sqlite;
    let options = saga_participants::Options {
        max_message: 512,
        ..saga_participants::Options::default()
    };
    let p = Participant::start_with(Kind::Account, backend, options).await;
    admin::open_account(&p.client, "alice", 100)
        .await
        .expect("open");
    let saga = Uuid::new_v4();
    let reserve = |step: &str, note: String| {
        command(
            saga,
            step,
            1,
            Kind::Account,
            RESERVE_CREDIT,
            CommandKind::Forward,
            json!({ "customer_id": "alice", "amount": 5, "note": note }),
        )
    };
    // A well-formed command, only too large for this participant.
    let large = reserve("large", "n".repeat(600));
    assert!(large.encode().len() > 512);
    p.publish(&large, large.message_id.as_str()).await;
    let small = reserve("small", String::new());
    p.publish(&small, small.message_id.as_str()).await;
    assert_eq!(output(&p.reply(&small).await)["reserved"], 5);

    let (reason, payload) = p.dead_letter(1).await;
    assert_eq!(
        reason,
        format!(
            "the message is {} bytes, over this process's limit of 512 bytes \
             (--max-message / SAGA_MAX_MESSAGE)",
            large.encode().len()
        )
    );
    assert_eq!(payload, large.encode());
    // It was not handled: no reply to it was published.
    assert!(p.stored_replies(&large.message_id).is_empty());
    let mut dlq =
        p.js.get_stream(subjects::DLQ_STREAM)
            .await
            .expect("dlq stream");
    assert_eq!(dlq.info().await.expect("info").state.messages, 1);
    p.stop().await;
}
