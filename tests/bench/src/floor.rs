//! The transport floor: the sagas' message pattern over raw JetStream, with no saga logic and no
//! database, on the same nats-server and at the same K.
//!
//! It mirrors what the system does per saga, message for message:
//! - a driver (the orchestrator's part) publishes each command with a `Nats-Msg-Id` and waits
//!   for the stream's PubAck, as `Transport::publish_all` does;
//! - two responders (account, order), each with a durable pull consumer (explicit ack, 30 s ack
//!   wait, up to `--participant-concurrency` messages in hand) publish a reply with its own
//!   `Nats-Msg-Id`, wait for its PubAck, then double-ack the command, as the participants do;
//! - the driver consumes the replies through a durable pull consumer, publishes the next
//!   command and only then acks the reply, as the orchestrator does.
//!
//! A saga is three round trips (ReserveCredit, CreateOrder, ApproveOrder); the same share of
//! sagas as `--fail-rate` also does the two compensations (CancelOrder, ReleaseCredit), so the
//! floor carries the same messages as the measured run. Payloads are opaque bytes of the size
//! of the real envelopes. It uses streams of its own (`BENCH_FLOOR_COMMANDS`,
//! `BENCH_FLOOR_REPLIES`, same settings and storage as the protocol's), runs before the sagas,
//! and deletes its streams when done.

use crate::Error;
use async_nats::jetstream::{self, consumer::pull, message::PublishMessage, stream};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use saga_protocol::{CommandEnvelope, CommandKind, MessageId, Outcome, ReplyEnvelope, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const COMMANDS: &str = "BENCH_FLOOR_COMMANDS";
const REPLIES: &str = "BENCH_FLOOR_REPLIES";
const ACK_WAIT: Duration = Duration::from_secs(30);

/// (participant, command) of each round trip; forward sagas do the first three.
const STEPS: [(&str, &str); 5] = [
    ("account", "ReserveCredit"),
    ("order", "CreateOrder"),
    ("order", "ApproveOrder"),
    ("order", "CancelOrder"),
    ("account", "ReleaseCredit"),
];

pub struct Floor {
    pub latency_us: Histogram<u64>,
    pub sagas: u64,
    pub round_trips: u64,
    pub elapsed: Duration,
}

struct Shared {
    js: jetstream::Context,
    prefix: String,
    fail_rate: f64,
    command: Bytes,
    reply: Bytes,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Shared {
    fn steps_of(&self, i: u64) -> usize {
        if super::driver::fails(i, self.fail_rate) {
            5
        } else {
            3
        }
    }

    async fn send(&self, i: u64, step: usize) -> Result<(), Error> {
        let (participant, command) = STEPS[step];
        let id = format!("{}-{i}.{step}.1.do", self.prefix);
        let publish = PublishMessage::build()
            .payload(self.command.clone())
            .message_id(id.as_str());
        self.js
            .send_publish(format!("bench.floor.cmd.{participant}.{command}"), publish)
            .await?
            .await?;
        Ok(())
    }
}

/// Sizes of real envelopes of a place_order saga, for payloads of the same size.
fn sample_sizes() -> (usize, usize) {
    let saga_id = uuid::Uuid::new_v4();
    let command = CommandEnvelope {
        schema_version: saga_protocol::SCHEMA_VERSION,
        message_id: MessageId::command(saga_id, "create_order", 1, CommandKind::Forward),
        saga_id,
        saga_name: "place_order".into(),
        step: "create_order".into(),
        attempt: 1,
        kind: CommandKind::Forward,
        participant: "order".into(),
        command: "CreateOrder".into(),
        effect_key: format!("{saga_id}.create_order"),
        payload: serde_json::json!({"customer_id": "bench-0000-12", "amount": 512}),
        sent_at: Timestamp::now(),
    };
    let reply = ReplyEnvelope::answering(
        &command,
        Outcome::Succeeded {
            output: serde_json::json!({"order_id": uuid::Uuid::new_v4()}),
        },
        Timestamp::now(),
    );
    (command.encode().len(), reply.encode().len())
}

async fn create_streams(
    js: &jetstream::Context,
    storage: stream::StorageType,
) -> Result<(), Error> {
    let template = saga_protocol::streams::configs(1)
        .into_iter()
        .next()
        .ok_or("no protocol stream configuration")?;
    for (name, subject) in [
        (COMMANDS, "bench.floor.cmd.>"),
        (REPLIES, "bench.floor.reply.>"),
    ] {
        let _ = js.delete_stream(name).await;
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            storage,
            ..template.clone()
        })
        .await?;
    }
    Ok(())
}

async fn consumer(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> Result<jetstream::consumer::PullConsumer, Error> {
    let config = pull::Config {
        durable_name: Some(name.into()),
        filter_subject: filter.into(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    Ok(js
        .get_stream(stream)
        .await?
        .get_or_create_consumer(name, config)
        .await?)
}

fn header_id(msg: &jetstream::Message) -> Option<String> {
    msg.headers
        .as_ref()?
        .get(saga_protocol::headers::NATS_MSG_ID)
        .map(|v| v.as_str().to_string())
}

/// A participant: reply to every command, then double-ack it.
async fn respond(
    js: jetstream::Context,
    participant: &'static str,
    reply: Bytes,
    concurrency: usize,
) -> Result<(), Error> {
    let consumer = consumer(
        &js,
        COMMANDS,
        &format!("bench-floor-{participant}"),
        &format!("bench.floor.cmd.{participant}.>"),
    )
    .await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(concurrency)
        .messages()
        .await?;
    messages
        .for_each_concurrent(concurrency, |msg| {
            let (js, reply) = (js.clone(), reply.clone());
            async move {
                let Ok(msg) = msg else { return };
                let id = format!("{}.reply", header_id(&msg).unwrap_or_default());
                let publish = PublishMessage::build()
                    .payload(reply)
                    .message_id(id.as_str());
                let subject = format!("bench.floor.reply.{participant}");
                if let Ok(ack) = js.send_publish(subject, publish).await
                    && ack.await.is_ok()
                {
                    let _ = msg.double_ack().await;
                }
            }
        })
        .await;
    Ok(())
}

/// The orchestrator's part: on each reply, send the next command (or finish), then ack.
async fn drive(shared: Arc<Shared>) -> Result<(), Error> {
    let consumer = consumer(
        &shared.js,
        REPLIES,
        "bench-floor-driver",
        "bench.floor.reply.>",
    )
    .await?;
    let mut messages = consumer.messages().await?;
    while let Some(msg) = messages.next().await {
        let Ok(msg) = msg else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            // `{prefix}-{i}.{step}.1.do.reply`
            let id = header_id(&msg).unwrap_or_default();
            let mut parts = id.split('.');
            let i = parts
                .next()
                .and_then(|p| p.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok());
            let step = parts.next().and_then(|s| s.parse::<usize>().ok());
            let (Some(i), Some(step)) = (i, step) else {
                let _ = msg.ack().await;
                return;
            };
            if step + 1 < shared.steps_of(i) {
                if shared.send(i, step + 1).await.is_err() {
                    let _ = msg
                        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(100))))
                        .await;
                    return;
                }
            } else {
                let done = shared
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&i);
                if let Some(tx) = done {
                    let _ = tx.send(());
                }
            }
            let _ = msg.ack().await;
        });
    }
    Ok(())
}

/// Runs `sagas` floor sagas with `in_flight` at once.
pub async fn run(
    client: async_nats::Client,
    storage: stream::StorageType,
    sagas: u64,
    in_flight: usize,
    fail_rate: f64,
    participant_concurrency: usize,
    progress: ProgressBar,
) -> Result<Floor, Error> {
    let js = jetstream::new(client);
    create_streams(&js, storage).await?;
    let (command_size, reply_size) = sample_sizes();
    let shared = Arc::new(Shared {
        js: js.clone(),
        prefix: format!("floor{}", std::process::id()),
        fail_rate,
        command: Bytes::from(vec![b'c'; command_size]),
        reply: Bytes::from(vec![b'r'; reply_size]),
        waiting: Mutex::new(HashMap::new()),
    });
    let mut background = tokio::task::JoinSet::new();
    for participant in ["account", "order"] {
        let reply = shared.reply.clone();
        background.spawn(respond(
            js.clone(),
            participant,
            reply,
            participant_concurrency,
        ));
    }
    background.spawn(drive(shared.clone()));

    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (shared, next, histogram, progress) = (
            shared.clone(),
            next.clone(),
            histogram.clone(),
            progress.clone(),
        );
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= sagas {
                    return Ok::<(), Error>(());
                }
                let (tx, rx) = oneshot::channel();
                shared
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(i, tx);
                let sent = Instant::now();
                shared.send(i, 0).await?;
                tokio::time::timeout(Duration::from_secs(60), rx)
                    .await
                    .map_err(|_| format!("floor saga {i} did not finish within 60s"))?
                    .map_err(|_| "floor driver stopped")?;
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.record(us.max(1));
                }
                progress.inc(1);
            }
        });
    }
    let mut failure = None;
    while let Some(done) = clients.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(e.to_string().into()),
        }
    }
    let elapsed = started.elapsed();
    background.abort_all();
    for name in [COMMANDS, REPLIES] {
        let _ = js.delete_stream(name).await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let round_trips = (0..sagas).map(|i| shared.steps_of(i) as u64).sum();
    let latency_us = histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    Ok(Floor {
        latency_us,
        sagas,
        round_trips,
        elapsed,
    })
}
