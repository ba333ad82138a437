//! A running participant against a real nats-server and a real database (SQLite file or a
//! throwaway PostgreSQL cluster), with helpers to publish commands and read replies.

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use futures::StreamExt;
use saga_participants::store::Store;
use saga_participants::{Kind, Options};
use saga_protocol::{
    CommandEnvelope, CommandKind, MessageId, ReplyEnvelope, SCHEMA_VERSION, Timestamp, subjects,
};
use saga_testkit::{NatsServer, Postgres, wait_for};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a test waits for anything to happen.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The next `n` replies to `command_id` on `wire` (see [`Participant::wire`]), copies included.
pub async fn answers(
    wire: &mut async_nats::Subscriber,
    command_id: &MessageId,
    n: usize,
) -> Vec<ReplyEnvelope> {
    use futures::StreamExt;
    let mut answers = Vec::new();
    while answers.len() < n {
        let message = tokio::time::timeout(DEADLINE, wire.next())
            .await
            .expect("the replies in time")
            .expect("subscription open");
        let reply = ReplyEnvelope::decode(&message.payload).expect("reply decodes");
        if &reply.command_id == command_id {
            answers.push(reply);
        }
    }
    answers
}

/// Runs the same test body against both backends:
/// `both_backends!(name, …)` makes `sqlite::name` and `postgres::name` calling `name(backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, removed on drop.
pub struct Database {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<Postgres>,
}

impl Database {
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("participant.db").display());
                Database {
                    url,
                    _dir: Some(dir),
                    _pg: None,
                }
            }
            Backend::Postgres => {
                let pg = Postgres::start().expect("PostgreSQL starts");
                Database {
                    url: pg.url(),
                    _dir: None,
                    _pg: Some(pg),
                }
            }
        }
    }

    /// A second pool on the same database, to inspect it.
    pub async fn store(&self) -> Store {
        Store::open(&self.url, 2).await.expect("database opens")
    }
}

/// A reply read from `SAGA_REPLIES`, with the `Nats-Msg-Id` it was stored under.
#[derive(Debug, Clone)]
pub struct StoredReply {
    pub reply: ReplyEnvelope,
    pub nats_msg_id: Option<String>,
}

/// A participant process under test.
pub struct Participant {
    kind: Kind,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub db: Database,
    replies: Arc<Mutex<Vec<StoredReply>>>,
    reader: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), saga_participants::Error>>>,
    // Dropped last: the server outlives the clients.
    _nats: NatsServer,
}

impl Participant {
    pub async fn start(kind: Kind, backend: Backend) -> Self {
        Self::start_with(kind, backend, Options::default()).await
    }

    /// Starts `kind` with `options` (NATS and database URLs filled in) and waits until ready.
    pub async fn start_with(kind: Kind, backend: Backend, options: Options) -> Self {
        let nats = NatsServer::start().expect("nats-server starts");
        let db = Database::new(backend);
        let options = Options {
            nats_url: nats.url(),
            nats_nkey: nats.identities().nkey(kind.as_str()),
            nats_ca: nats.identities().ca(),
            database_url: db.url.clone(),
            ..options
        };
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(saga_participants::run_with_ready(
            kind, options, shutdown, ready_tx,
        ));
        tokio::time::timeout(DEADLINE, ready)
            .await
            .expect("participant ready in time")
            .expect("participant started");
        let client = nats.client().await.expect("connect");
        let js = jetstream::new(client.clone());
        let replies = Arc::new(Mutex::new(Vec::new()));
        let reader = read_replies(&js, kind, replies.clone()).await;
        Participant {
            kind,
            client,
            js,
            db,
            replies,
            reader,
            stop: Some(stop),
            task: Some(task),
            _nats: nats,
        }
    }

    /// Publishes `command` on its subject with `Nats-Msg-Id` = `nats_msg_id`.
    pub async fn publish(&self, command: &CommandEnvelope, nats_msg_id: &str) {
        let subject = subjects::command(&command.participant, &command.command);
        let message = PublishMessage::build()
            .payload(command.encode().into())
            .message_id(nats_msg_id);
        self.js
            .send_publish(subject, message)
            .await
            .expect("publish")
            .await
            .expect("pub ack");
    }

    /// Publishes raw bytes on `subject` (for malformed input).
    pub async fn publish_raw(&self, subject: &str, payload: Vec<u8>) {
        self.js
            .publish(subject.to_string(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("pub ack");
    }

    /// The reason and payload of the dead letter at `sequence` of `SAGA_DLQ`, once it is there.
    pub async fn dead_letter(&self, sequence: u64) -> (String, Vec<u8>) {
        let dlq = self
            .js
            .get_stream(subjects::DLQ_STREAM)
            .await
            .expect("dlq stream");
        let letter = wait_for("the dead letter", DEADLINE, || {
            let dlq = dlq.clone();
            async move { dlq.get_raw_message(sequence).await.ok() }
        })
        .await
        .expect("dead letter");
        let reason = letter
            .headers
            .get(saga_protocol::headers::DLQ_REASON)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        (reason, letter.payload.to_vec())
    }

    /// A subscription to this participant's replies as they are published, before JetStream
    /// drops a copy: read it with [`answers`].
    pub async fn wire(&self) -> async_nats::Subscriber {
        let wire = self
            .client
            .subscribe(subjects::reply(self.kind.as_str()))
            .await
            .expect("subscribe");
        self.client.flush().await.expect("flush");
        wire
    }

    /// Every reply to `command_id` stored in `SAGA_REPLIES` so far.
    pub fn stored_replies(&self, command_id: &MessageId) -> Vec<StoredReply> {
        let seen = self.replies.lock().expect("lock");
        seen.iter()
            .filter(|r| &r.reply.command_id == command_id)
            .cloned()
            .collect()
    }

    /// Waits for the reply to `command`.
    pub async fn reply(&self, command: &CommandEnvelope) -> ReplyEnvelope {
        let id = command.message_id.clone();
        wait_for(&format!("reply to {id}"), DEADLINE, || {
            let found = self.stored_replies(&id).into_iter().next();
            async move { found.map(|r| r.reply) }
        })
        .await
        .expect("reply arrives")
    }

    /// Requests shutdown and checks that `run` returns `Ok` within the grace period.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("participant stops in time")
                .expect("participant task joins");
            result.expect("participant ran without error");
        }
        self.reader.abort();
    }
}

/// Reads every reply of `kind` from `SAGA_REPLIES` with a consumer of the test's own.
async fn read_replies(
    js: &jetstream::Context,
    kind: Kind,
    into: Arc<Mutex<Vec<StoredReply>>>,
) -> JoinHandle<()> {
    let stream = js
        .get_stream(subjects::REPLIES_STREAM)
        .await
        .expect("replies stream");
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subjects::reply(kind.as_str()),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("replies consumer");
    let mut messages = consumer.messages().await.expect("replies messages");
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            let nats_msg_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(saga_protocol::headers::NATS_MSG_ID))
                .map(|v| v.as_str().to_string());
            if let Ok(reply) = ReplyEnvelope::decode(&message.payload) {
                into.lock()
                    .expect("lock")
                    .push(StoredReply { reply, nats_msg_id });
            }
        }
    })
}

/// A command of a test saga: message id and effect key as the orchestrator makes them.
pub fn command(
    saga_id: Uuid,
    step: &str,
    attempt: u32,
    participant: Kind,
    name: &str,
    kind: CommandKind,
    payload: serde_json::Value,
) -> CommandEnvelope {
    CommandEnvelope {
        schema_version: SCHEMA_VERSION,
        message_id: MessageId::command(saga_id, step, attempt, kind),
        saga_id,
        saga_name: "test".to_string(),
        step: step.to_string(),
        attempt,
        kind,
        participant: participant.to_string(),
        command: name.to_string(),
        effect_key: format!("{saga_id}.{step}"),
        payload,
        sent_at: Timestamp::now(),
    }
}

/// `Outcome::Rejected`'s reason, or a panic naming what came instead.
pub fn rejection(reply: &ReplyEnvelope) -> String {
    match &reply.outcome {
        saga_protocol::Outcome::Rejected { reason } => reason.clone(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// `Outcome::Succeeded`'s output, or a panic naming what came instead.
pub fn output(reply: &ReplyEnvelope) -> serde_json::Value {
    match &reply.outcome {
        saga_protocol::Outcome::Succeeded { output } => output.clone(),
        other => panic!("expected success, got {other:?}"),
    }
}
