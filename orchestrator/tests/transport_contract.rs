#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The transport's contract, one set of test bodies run against every implementation:
//! [`MemoryTransport`], and [`JetStream`] on a real nats-server started per test. Each body is
//! generic over `T: Transport` and a [`Peer`], the other end of the bus as a participant sees
//! it (the commands stored, replies sent, the dead-letter stream); the `contract!` macro at
//! the end instantiates it once per implementation (`memory::…`, `jetstream::…`).

use async_nats::jetstream as js;
use saga_orchestrator::clock::SystemClock;
use saga_orchestrator::partitions::{Keeper, LeaseOptions, Ownership, PARTITIONS};
use saga_orchestrator::transport::{
    Delivery, JetStream, MemoryTransport, Replies, Subscription, Transport,
};
use saga_protocol::{
    CommandEnvelope, CommandKind, MessageId, SCHEMA_VERSION, Timestamp, headers, subjects,
};
use saga_testkit::{NatsServer, wait_for};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// The shortest ack wait JetStream accepts, so redeliveries come quickly.
const ACK_WAIT: Duration = Duration::from_secs(1);
/// How long any delivery may take to arrive.
const ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// The participants' side of the bus.
trait Peer {
    /// Every command stored, in order, with its subject.
    async fn stored(&self) -> Vec<(String, CommandEnvelope)>;
    /// Sends `payload` on a reply subject.
    async fn send(&self, subject: &str, payload: &[u8]);
    /// The dead letters stored so far: their original subject, body and reason.
    async fn dead_letters(&self) -> Vec<(String, Vec<u8>, String)>;
}

impl Peer for MemoryTransport {
    async fn stored(&self) -> Vec<(String, CommandEnvelope)> {
        self.published()
            .into_iter()
            .filter(|p| p.stored)
            .map(|p| (p.subject, p.command))
            .collect()
    }

    async fn send(&self, subject: &str, payload: &[u8]) {
        self.deliver(subject, payload.to_vec());
    }

    async fn dead_letters(&self) -> Vec<(String, Vec<u8>, String)> {
        MemoryTransport::dead_letters(self)
            .into_iter()
            .map(|d| (d.subject, d.payload, d.reason))
            .collect()
    }
}

/// A participant's own connection to the nats-server.
struct NatsPeer {
    js: js::Context,
    _nats: NatsServer,
}

impl NatsPeer {
    async fn stream_messages(&self, stream: &str) -> Vec<js::message::StreamMessage> {
        let mut stream = self.js.get_stream(stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            messages.push(stream.get_raw_message(sequence).await.unwrap());
        }
        messages
    }
}

impl Peer for NatsPeer {
    async fn stored(&self) -> Vec<(String, CommandEnvelope)> {
        self.stream_messages(subjects::COMMANDS_STREAM)
            .await
            .into_iter()
            .map(|m| {
                let command = CommandEnvelope::decode(&m.payload).unwrap();
                (m.subject.to_string(), command)
            })
            .collect()
    }

    async fn send(&self, subject: &str, payload: &[u8]) {
        let ack = self
            .js
            .publish(subject.to_string(), payload.to_vec().into())
            .await
            .unwrap();
        ack.await.unwrap();
    }

    async fn dead_letters(&self) -> Vec<(String, Vec<u8>, String)> {
        self.stream_messages(subjects::DLQ_STREAM)
            .await
            .into_iter()
            .map(|m| {
                let header = |name: &str| m.headers.get(name).unwrap().as_str().to_string();
                (
                    header(headers::DLQ_ORIGINAL_SUBJECT),
                    m.payload.to_vec(),
                    header(headers::DLQ_REASON),
                )
            })
            .collect()
    }
}

fn command(saga_id: Uuid, step: &str, participant: &str, name: &str) -> CommandEnvelope {
    CommandEnvelope {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::command(saga_id, step, 1, CommandKind::Forward),
        saga_id,
        saga_name: "transfer".to_string(),
        step: step.to_string(),
        attempt: 1,
        kind: CommandKind::Forward,
        participant: participant.to_string(),
        command: name.to_string(),
        effect_key: format!("{saga_id}.{step}"),
        payload: json!({ "amount": 5 }),
        sent_at: Timestamp::now(),
    }
}

fn subscription() -> Subscription {
    Subscription {
        ack_wait: ACK_WAIT,
        batch: 8,
        ..Subscription::default()
    }
}

async fn next<R: Replies>(replies: &mut R) -> R::Delivery {
    tokio::time::timeout(ARRIVES_WITHIN, replies.next())
        .await
        .expect("a reply arrives")
}

async fn published_commands_are_stored_once_per_message_id<T: Transport>(t: T, peer: impl Peer) {
    let saga_id = Uuid::new_v4();
    let debit = command(saga_id, "debit", "bank", "Debit");
    let ship = command(saga_id, "ship", "warehouse", "Ship");
    t.publish(&[&debit, &ship], None).await.unwrap();
    // Published again after a crash: the same ids.
    t.publish(&[&debit], None).await.unwrap();

    let stored = peer.stored().await;
    assert_eq!(
        stored,
        vec![
            ("saga.cmd.bank.Debit".to_string(), debit),
            ("saga.cmd.warehouse.Ship".to_string(), ship),
        ]
    );
}

async fn replies_arrive_in_order_and_an_acknowledged_one_never_again<T: Transport>(
    t: T,
    peer: impl Peer,
) {
    let mut replies = t.replies(subscription()).await.unwrap();
    for n in 0..3 {
        peer.send("saga.reply.bank", format!("reply {n}").as_bytes())
            .await;
    }
    let mut waiting = Vec::new();
    for n in 0..3 {
        let delivery = next(&mut replies).await;
        assert_eq!(delivery.subject(), "saga.reply.bank");
        assert_eq!(delivery.payload(), format!("reply {n}").as_bytes());
        let (published, pending) = delivery.published().expect("a publish time");
        assert!(published <= Timestamp::now());
        assert!(Timestamp::now().since(published) < ARRIVES_WITHIN);
        waiting.push(pending);
        delivery.ack().await.unwrap();
    }
    assert_eq!(waiting, [2, 1, 0], "replies waiting behind each");
    let again = tokio::time::timeout(ACK_WAIT * 3, replies.next()).await;
    assert!(again.is_err(), "an acknowledged reply came again");
}

async fn a_nak_delivers_the_reply_again_after_its_delay<T: Transport>(t: T, peer: impl Peer) {
    let mut replies = t.replies(subscription()).await.unwrap();
    peer.send("saga.reply.bank", b"try later").await;
    let first = next(&mut replies).await;
    let delay = Duration::from_millis(300);
    let naked = tokio::time::Instant::now();
    first.nak(delay).await.unwrap();

    let again = next(&mut replies).await;
    assert_eq!(again.payload(), b"try later");
    assert!(naked.elapsed() >= delay, "delivered again before the delay");
    again.ack().await.unwrap();
}

async fn a_reply_left_unsettled_is_delivered_again<T: Transport>(t: T, peer: impl Peer) {
    let mut replies = t.replies(subscription()).await.unwrap();
    peer.send("saga.reply.bank", b"dropped").await;
    // The process holding it dies: it is neither acknowledged nor refused.
    drop(next(&mut replies).await);

    let again = next(&mut replies).await;
    assert_eq!(again.payload(), b"dropped");
    again.ack().await.unwrap();
}

async fn a_dead_letter_keeps_the_body_subject_and_a_header_safe_reason<T: Transport>(
    t: T,
    peer: impl Peer,
) {
    let mut replies = t.replies(subscription()).await.unwrap();
    peer.send("saga.reply.bank", b"\xffnot json").await;
    let delivery = next(&mut replies).await;
    delivery
        .dead_letter("cannot decode:\nexpected value at line 1")
        .await
        .unwrap();
    delivery.ack().await.unwrap();

    assert_eq!(
        peer.dead_letters().await,
        vec![(
            "saga.reply.bank".to_string(),
            b"\xffnot json".to_vec(),
            "cannot decode: expected value at line 1".to_string()
        )]
    );
}

async fn the_lag_counts_the_replies_not_yet_acknowledged<T: Transport>(t: T, peer: impl Peer) {
    let mut replies = t.replies(subscription()).await.unwrap();
    for n in 0..2 {
        peer.send("saga.reply.bank", format!("{n}").as_bytes())
            .await;
    }
    let first = next(&mut replies).await;
    let lag = t.reply_lag().await.unwrap();
    assert_eq!(lag.consumer, "orchestrator");
    assert_eq!(lag.pending + lag.ack_pending, 2, "{lag:?}");
    first.ack().await.unwrap();
    next(&mut replies).await.ack().await.unwrap();
    wait_for("the lag to reach zero", ARRIVES_WITHIN, || async {
        let lag = t.reply_lag().await.unwrap();
        (lag.pending + lag.ack_pending == 0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(t.connected(), Ok(()));
}

async fn a_lone_replica_owns_every_partition_until_it_stops<T: Transport>(t: T, _: impl Peer) {
    let ownership = Ownership::default();
    let (gained_tx, mut gained) = tokio::sync::mpsc::unbounded_channel();
    let keeper = t
        .leases(LeaseOptions {
            replica: "replica-a".to_string(),
            bound: ACK_WAIT,
            replicas: 1,
            ownership: ownership.clone(),
            gained: gained_tx,
        })
        .await
        .unwrap();
    assert_eq!(keeper.replica(), "replica-a");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(keeper.run(stop.clone().cancelled_owned()));

    let mut reported = std::collections::BTreeSet::new();
    while reported.len() < usize::from(PARTITIONS) {
        let partitions = tokio::time::timeout(ARRIVES_WITHIN, gained.recv())
            .await
            .expect("partitions gained")
            .unwrap();
        reported.extend(partitions);
    }
    assert_eq!(ownership.owned(), (0..PARTITIONS).collect());
    stop.cancel();
    task.await.unwrap();
    assert!(ownership.owned().is_empty(), "released on stop");
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let transport = MemoryTransport::new(SystemClock);
                    super::$name(transport.clone(), transport).await;
                }
            )*
        }

        mod jetstream {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let nats = NatsServer::start().unwrap();
                    let transport = JetStream::connect(&nats.url(), 1, &nats.identities().credentials("orchestrator").unwrap())
        .await
        .unwrap();
                    let client = nats.client().await.unwrap();
                    let peer = NatsPeer { js: async_nats::jetstream::new(client), _nats: nats };
                    super::$name(transport, peer).await;
                }
            )*
        }
    };
}

contract!(
    published_commands_are_stored_once_per_message_id,
    replies_arrive_in_order_and_an_acknowledged_one_never_again,
    a_nak_delivers_the_reply_again_after_its_delay,
    a_reply_left_unsettled_is_delivered_again,
    a_dead_letter_keeps_the_body_subject_and_a_header_safe_reason,
    the_lag_counts_the_replies_not_yet_acknowledged,
    a_lone_replica_owns_every_partition_until_it_stops,
);
