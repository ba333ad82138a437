//! Consuming participant replies: decode, route to a worker by saga id, handle, ack.
//!
//! Replies of one saga are handled in order by one worker (the saga id picks it), replies of
//! different sagas in parallel. A reply is acknowledged only after its events are appended
//! and the commands they decided are published, so a crash anywhere before the ack makes
//! JetStream redeliver it, and the core recognises it as already handled.

use super::{Orchestrator, ReplyHandled, Result};
use crate::store::EventStore;
use crate::transport::REPLY_CONSUMER;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use saga_protocol::ReplyEnvelope;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long JetStream waits before redelivering a reply that hit a transient failure.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long the replies in hand may take to finish after shutdown is requested. Kubernetes'
/// `terminationGracePeriodSeconds` must leave room for it (the manifests' test checks this).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(super) async fn consume<S: EventStore>(
    orchestrator: Orchestrator<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let consumer = orchestrator.transport().replies(REPLY_CONSUMER).await?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| crate::transport::Error::Consumer(e.to_string()))?;
    let workers = orchestrator.options().workers.max(1);
    let mut senders = Vec::with_capacity(workers);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (tx, rx) = mpsc::channel::<(Message, ReplyEnvelope)>(64);
        senders.push(tx);
        tasks.spawn(work(orchestrator.clone(), rx));
    }
    let mut sweep = tokio::time::interval(
        orchestrator
            .options()
            .republish_after
            .max(Duration::from_secs(1)),
    );
    sweep.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = sweep.tick() => {
                let o = orchestrator.clone();
                tokio::spawn(async move {
                    match o.recover(o.options().republish_after).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(republished = n, "re-published commands of quiet sagas"),
                        Err(e) => tracing::warn!(error = %e, "periodic re-publish failed"),
                    }
                });
            }
            next = messages.next() => {
                let Some(next) = next else { break };
                let msg = match next {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(error = %e, "reply consumer error");
                        continue;
                    }
                };
                match ReplyEnvelope::decode(&msg.payload) {
                    Ok(reply) => {
                        let shard = shard_of(&reply, senders.len());
                        if senders[shard].send((msg, reply)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => dead_letter(&orchestrator, &msg, &e.to_string()).await,
                }
            }
        }
    }
    // Stop pulling before draining: replies not pulled yet go to the other replicas at once.
    // Those pulled but not handed to a worker are redelivered after the ack wait.
    drop(messages);
    // Let the workers finish what they hold; unacked messages are redelivered anyway.
    drop(senders);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("shutdown deadline passed with replies still in hand");
    }
    Ok(())
}

fn shard_of(reply: &ReplyEnvelope, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    reply.saga_id.hash(&mut h);
    usize::try_from(h.finish() % shards as u64).unwrap_or(0)
}

async fn work<S: EventStore>(
    orchestrator: Orchestrator<S>,
    mut rx: mpsc::Receiver<(Message, ReplyEnvelope)>,
) {
    while let Some((msg, reply)) = rx.recv().await {
        match orchestrator.handle_reply(&reply).await {
            Ok(ReplyHandled::Applied | ReplyHandled::Duplicate) => ack(&msg).await,
            Ok(ReplyHandled::Refused(reason)) => dead_letter(&orchestrator, &msg, &reason).await,
            Err(e) if e.is_transient() => {
                tracing::warn!(saga_id = %reply.saga_id, error = %e, "reply will be retried");
                if let Err(e) = msg.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await {
                    tracing::warn!(error = %e, "cannot nak a reply");
                }
            }
            Err(e) => {
                tracing::error!(saga_id = %reply.saga_id, error = %e, "reply cannot be handled");
                dead_letter(&orchestrator, &msg, &e.to_string()).await;
            }
        }
    }
}

async fn ack(msg: &Message) {
    if let Err(e) = msg.ack().await {
        // Not fatal: the reply is redelivered and recognised as already handled.
        tracing::warn!(error = %e, "cannot ack a reply");
    }
}

async fn dead_letter<S: EventStore>(orchestrator: &Orchestrator<S>, msg: &Message, reason: &str) {
    tracing::warn!(subject = %msg.subject, reason, "dead-lettering a reply");
    match orchestrator.transport().dead_letter(msg, reason).await {
        Ok(()) => ack(msg).await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot dead-letter; the reply will be redelivered");
            let _ = msg.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
        }
    }
}
