//! A participant that speaks the protocol by hand, with no library, and breaks one rule of
//! the contract at a time on demand: to show that each check of the kit can fail.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, message::PublishMessage};
use futures::StreamExt;
use saga_protocol::{
    CommandEnvelope, CommandKind, MessageId, Outcome, ReplyEnvelope, Timestamp, headers,
};
use saga_testkit::NatsServer;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

pub const CATALOGUE: &str = r#"
[broken.Do]
kind = "forward"
input = { amount = "integer" }
output = { done = "integer" }

[broken.Undo]
kind = "compensation"
undoes = "Do"
"#;

/// The rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    Nothing,
    /// Handles every delivery anew: a copy is answered again, not from an inbox.
    NoInbox,
    /// A compensation that comes first leaves no tombstone: the late command applies.
    NoTombstone,
    /// A second compensation finds nothing left and refuses.
    UndoesTwice,
    /// Replies under a wrong message id.
    WrongIds,
    /// Replies without the command's trace context.
    NoTrace,
    /// Acks what it cannot read without dead-lettering it, and answers unknown commands.
    SwallowsBadInput,
}

enum Effect {
    Done(i64),
    Undone(i64),
    Tombstone,
}

#[derive(Default)]
struct State {
    inbox: HashMap<MessageId, ReplyEnvelope>,
    effects: HashMap<String, Effect>,
    applied: i64,
}

pub struct Broken {
    breaks: Arc<Mutex<Break>>,
    task: JoinHandle<()>,
}

impl Broken {
    /// Consumes `saga.cmd.broken.>` as the harness (allowed everything).
    pub async fn start(nats: &NatsServer) -> Self {
        let js = jetstream::new(nats.client().await.unwrap());
        saga_protocol::streams::ensure(&js, 1).await.unwrap();
        let stream = js
            .get_stream(saga_protocol::subjects::COMMANDS_STREAM)
            .await
            .unwrap();
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("participant-broken".into()),
                filter_subject: "saga.cmd.broken.>".into(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let breaks = Arc::new(Mutex::new(Break::Nothing));
        let current = breaks.clone();
        let task = tokio::spawn(async move {
            let mut state = State::default();
            while let Some(Ok(message)) = messages.next().await {
                let now = *current.lock().unwrap();
                state.handle(&js, &message, now).await;
                message.ack().await.unwrap();
            }
        });
        Broken { breaks, task }
    }

    pub fn set(&self, breaks: Break) {
        *self.breaks.lock().unwrap() = breaks;
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    async fn handle(
        &mut self,
        js: &jetstream::Context,
        message: &jetstream::Message,
        breaks: Break,
    ) {
        let trace = message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::TRACEPARENT))
            .map(|v| v.to_string());
        let command = match CommandEnvelope::decode(&message.payload) {
            Ok(c) if c.command == "Do" || c.command == "Undo" => c,
            Ok(unknown) if breaks == Break::SwallowsBadInput => {
                let refused = Outcome::Rejected {
                    reason: "unknown".into(),
                };
                let reply = ReplyEnvelope::answering(&unknown, refused, Timestamp::now());
                return publish(js, &reply, trace.as_deref()).await;
            }
            _ if breaks == Break::SwallowsBadInput => return,
            Ok(unknown) => {
                return dead_letter(
                    js,
                    message,
                    &format!("unknown command `{}`", unknown.command),
                )
                .await;
            }
            Err(e) => return dead_letter(js, message, &e.to_string()).await,
        };
        if breaks != Break::NoInbox
            && let Some(recorded) = self.inbox.get(&command.message_id)
        {
            return publish(js, recorded, trace.as_deref()).await;
        }
        let key = command.effect_key.clone();
        let outcome = match command.kind {
            CommandKind::Forward => match self.effects.get(&key) {
                Some(Effect::Tombstone | Effect::Undone(_)) => Outcome::Rejected {
                    reason: "compensated".into(),
                },
                Some(Effect::Done(n)) => Outcome::Succeeded {
                    output: json!({ "done": n }),
                },
                None => {
                    self.applied += 1;
                    self.effects.insert(key, Effect::Done(self.applied));
                    Outcome::Succeeded {
                        output: json!({ "done": self.applied }),
                    }
                }
            },
            CommandKind::Compensation => match self.effects.get(&key) {
                Some(Effect::Done(n)) => {
                    let n = *n;
                    self.effects.insert(key, Effect::Undone(n));
                    Outcome::Succeeded {
                        output: json!({ "undone": n }),
                    }
                }
                Some(Effect::Undone(_)) if breaks == Break::UndoesTwice => Outcome::Rejected {
                    reason: "nothing left to undo".into(),
                },
                Some(Effect::Undone(n)) => Outcome::Succeeded {
                    output: json!({ "undone": n }),
                },
                Some(Effect::Tombstone) => Outcome::Succeeded {
                    output: json!({ "undone": 0 }),
                },
                None => {
                    if breaks != Break::NoTombstone {
                        self.effects.insert(key, Effect::Tombstone);
                    }
                    Outcome::Succeeded {
                        output: json!({ "undone": 0 }),
                    }
                }
            },
        };
        let mut reply = ReplyEnvelope::answering(&command, outcome, Timestamp::now());
        if breaks == Break::WrongIds {
            reply.message_id = command.message_id.clone();
        }
        self.inbox.insert(command.message_id.clone(), reply.clone());
        let trace = trace.filter(|_| breaks != Break::NoTrace);
        publish(js, &reply, trace.as_deref()).await;
    }
}

async fn publish(js: &jetstream::Context, reply: &ReplyEnvelope, trace: Option<&str>) {
    let mut map = HeaderMap::new();
    if let Some(trace) = trace {
        map.insert(headers::TRACEPARENT, trace);
    }
    let message = PublishMessage::build()
        .payload(reply.encode().into())
        .headers(map)
        .message_id(reply.message_id.as_str());
    js.send_publish("saga.reply.broken", message)
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn dead_letter(js: &jetstream::Context, message: &jetstream::Message, reason: &str) {
    saga_protocol::dead_letter::publish(js, message, "broken", "participant-broken", reason)
        .await
        .unwrap();
}
