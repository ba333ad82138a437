//! The kit's hands on the bus: commands published to the participant's stream as the
//! orchestrator would, and its replies and dead letters heard as they are published.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage};
use futures::StreamExt;
use saga_protocol::{
    CommandEnvelope, CommandKind, MessageId, ReplyEnvelope, SCHEMA_VERSION, Timestamp, headers,
    subjects,
};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// A reply heard, with the trace context it carried.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    pub reply: ReplyEnvelope,
    pub traceparent: Option<String>,
}

/// A dead letter heard: its payload and the reason it gives.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    pub payload: Vec<u8>,
    pub reason: Option<String>,
}

pub(crate) struct Probe {
    js: jetstream::Context,
    pub participant: String,
    replies: async_nats::Subscriber,
    dead_letters: async_nats::Subscriber,
    /// Replies heard and not yet asked for, in order.
    heard: Vec<Heard>,
    dead: Vec<DeadLetter>,
    pub timeout: Duration,
}

impl Probe {
    /// Listens to `participant`'s replies and dead letters (before any command is sent).
    pub async fn open(
        client: async_nats::Client,
        participant: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let replies = client
            .subscribe(subjects::reply(participant))
            .await
            .map_err(|e| format!("cannot listen to {}: {e}", subjects::reply(participant)))?;
        let dead_letters = client
            .subscribe(subjects::dead_letter(participant))
            .await
            .map_err(|e| {
                format!(
                    "cannot listen to {}: {e}",
                    subjects::dead_letter(participant)
                )
            })?;
        client
            .flush()
            .await
            .map_err(|e| format!("NATS did not confirm the subscriptions: {e}"))?;
        Ok(Probe {
            js: jetstream::new(client),
            participant: participant.to_string(),
            replies,
            dead_letters,
            heard: Vec::new(),
            dead: Vec::new(),
            timeout,
        })
    }

    /// The envelope of attempt `attempt` of `step`'s `kind` command `command` in saga `saga`,
    /// as the orchestrator builds it.
    fn envelope(
        &self,
        saga: Uuid,
        step: &str,
        attempt: u32,
        kind: CommandKind,
        command: &str,
        payload: serde_json::Value,
    ) -> CommandEnvelope {
        CommandEnvelope {
            schema_version: SCHEMA_VERSION,
            message_id: MessageId::command(saga, step, attempt, kind),
            saga_id: saga,
            saga_name: "conformance".into(),
            step: step.into(),
            attempt,
            kind,
            participant: self.participant.clone(),
            command: command.into(),
            effect_key: format!("{saga}.{step}"),
            payload,
            sent_at: Timestamp::now(),
        }
    }

    /// Attempt `attempt` of the forward command `command` of the one step of saga `saga`.
    pub fn forward(
        &self,
        saga: Uuid,
        attempt: u32,
        command: &str,
        payload: Value,
    ) -> CommandEnvelope {
        self.envelope(
            saga,
            "step",
            attempt,
            CommandKind::Forward,
            command,
            payload,
        )
    }

    /// Attempt `attempt` of the compensation `command` of the one step of saga `saga`.
    pub fn compensation(
        &self,
        saga: Uuid,
        attempt: u32,
        command: &str,
        payload: Value,
    ) -> CommandEnvelope {
        self.envelope(
            saga,
            "step",
            attempt,
            CommandKind::Compensation,
            command,
            payload,
        )
    }

    /// Publishes `command` to the commands stream and waits for the stream to store it. Each
    /// publish has its own `Nats-Msg-Id`, so a copy reaches the participant as a redelivery
    /// would, rather than being dropped by the stream's de-duplication.
    pub async fn send(
        &self,
        command: &CommandEnvelope,
        traceparent: Option<&str>,
    ) -> Result<(), String> {
        let subject = subjects::command(&self.participant, &command.command);
        self.publish(subject, command.encode(), traceparent).await
    }

    /// Publishes raw bytes on `subject` of the participant's commands.
    pub async fn send_raw(&self, command: &str, payload: Vec<u8>) -> Result<(), String> {
        let subject = subjects::command(&self.participant, command);
        self.publish(subject, payload, None).await
    }

    async fn publish(
        &self,
        subject: String,
        payload: Vec<u8>,
        traceparent: Option<&str>,
    ) -> Result<(), String> {
        let mut header_map = HeaderMap::new();
        if let Some(traceparent) = traceparent {
            header_map.insert(headers::TRACEPARENT, traceparent);
        }
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(header_map)
            .message_id(format!("conformance.{}", Uuid::new_v4()));
        let stored = async {
            self.js
                .send_publish(subject.clone(), publish)
                .await?
                .await?;
            Ok::<_, async_nats::Error>(())
        };
        tokio::time::timeout(self.timeout, stored)
            .await
            .map_err(|_| format!("the stream did not store {subject} within {:?}", self.timeout))?
            .map_err(|e| format!("cannot publish {subject} (is the participant running, and its streams there?): {e}"))
    }

    /// The next reply to `command_id` (heard before or now), within the timeout.
    pub async fn reply(&mut self, command_id: &MessageId) -> Result<Heard, String> {
        if let Some(i) = self
            .heard
            .iter()
            .position(|h| &h.reply.command_id == command_id)
        {
            return Ok(self.heard.remove(i));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.replies.next())
                .await
                .map_err(|_| format!("no reply to {command_id} within {:?}", self.timeout))?
                .ok_or("the reply subscription closed")?;
            let Ok(reply) = ReplyEnvelope::decode(&message.payload) else {
                continue;
            };
            let traceparent = message
                .headers
                .as_ref()
                .and_then(|h| h.get(headers::TRACEPARENT))
                .map(|v| v.to_string());
            let heard = Heard { reply, traceparent };
            if &heard.reply.command_id == command_id {
                return Ok(heard);
            }
            self.heard.push(heard);
        }
    }

    /// Replies to `command_id` heard so far and not asked for.
    pub fn unasked(&self, command_id: &MessageId) -> usize {
        self.heard
            .iter()
            .filter(|h| &h.reply.command_id == command_id)
            .count()
    }

    /// The dead letter whose payload is `payload`, within the timeout.
    pub async fn dead_letter(&mut self, payload: &[u8]) -> Result<DeadLetter, String> {
        if let Some(i) = self.dead.iter().position(|d| d.payload == payload) {
            return Ok(self.dead.remove(i));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.dead_letters.next())
                .await
                .map_err(|_| {
                    format!(
                        "nothing dead-lettered on {} within {:?}",
                        subjects::dead_letter(&self.participant),
                        self.timeout
                    )
                })?
                .ok_or("the dead-letter subscription closed")?;
            let letter = DeadLetter {
                payload: message.payload.to_vec(),
                reason: message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(headers::DLQ_REASON))
                    .map(|v| v.to_string()),
            };
            if letter.payload == payload {
                return Ok(letter);
            }
            self.dead.push(letter);
        }
    }
}

/// A fresh W3C `traceparent`, sampled.
pub(crate) fn traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

/// The trace id of a `traceparent`.
pub(crate) fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}
