//! The replica's loop: consuming participant replies and firing timers, decoding each and
//! routing it to the worker of its saga ([`super::workers`]), which handles and settles it.
//!
//! Timers fall due by the reply watermark ([`super::watermark`]): while a backlog of replies
//! is read, neither timeouts nor the sweep of quiet sagas act on sagas whose replies wait
//! unread.
//!
//! Replies and timer ticks of one saga are handled in order by one worker (the saga id picks
//! it), those of different sagas in parallel. A reply is acknowledged only after its events are appended
//! and the commands they decided are published, so a crash anywhere before the ack makes
//! JetStream redeliver it, and the core recognises it as already handled.
//!
//! With tracing on, each reply is handled inside a `process saga.reply.{participant}` span
//! (kind consumer), child of the participant's publish span named by the reply's
//! `traceparent` header.

use super::timers::TimerWheel;
use super::watermark::Watermark;
use super::workers::{Work, dead_letter, shard_of, work};
use super::{Orchestrator, Result};
use crate::store::EventStore;
use crate::transport::{Delivery, REPLY_CONSUMER, Replies, Subscription, Transport};
use saga_protocol::ReplyEnvelope;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Replies pulled ahead per worker. Pulled replies count against the ack wait before they
/// are handled, so a replica holds few: the rest stay in the stream for the other replicas.
const PULL_AHEAD_PER_WORKER: usize = 4;
/// Replies queued at one worker.
const QUEUE_PER_WORKER: usize = 16;
pub use saga_protocol::inbound::SHUTDOWN_GRACE;

pub(super) async fn consume<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    mut wheel: TimerWheel,
    mut gained: mpsc::UnboundedReceiver<Vec<u16>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let failover_after = orchestrator.failover_bound();
    let workers = orchestrator.options().workers.max(1);
    // NATS away at start-up is waited out here; only a consumer that cannot be created at
    // all (conflicting settings) ends the loop with an error.
    let messages = orchestrator.transport().replies(Subscription {
        durable: REPLY_CONSUMER.to_string(),
        ack_wait: failover_after,
        batch: workers * PULL_AHEAD_PER_WORKER,
        pulling: orchestrator.replies_pulling.clone(),
    });
    tokio::pin!(shutdown);
    let mut messages = tokio::select! {
        messages = messages => messages?,
        () = &mut shutdown => return Ok(()),
    };
    let mut senders = Vec::with_capacity(workers);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (tx, rx) = mpsc::channel::<Work<T::Delivery>>(QUEUE_PER_WORKER);
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
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One sweep at a time: under load a sweep can take longer than its period.
    let sweeping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watermark = Watermark::new(orchestrator.clock.clone());
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = sweep.tick() => {
                // Reading a backlog, sagas look quiet only because their replies are unread.
                if watermark.behind(orchestrator.now()) {
                    tracing::debug!("reading a backlog of replies; quiet sagas not swept");
                    continue;
                }
                if sweeping.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    continue;
                }
                let (o, sweeping) = (orchestrator.clone(), sweeping.clone());
                tokio::spawn(async move {
                    match o.recover(o.options().republish_after).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(republished = n, "re-published commands of quiet sagas"),
                        Err(e) => tracing::warn!(error = %e, "periodic re-publish failed"),
                    }
                    sweeping.store(false, std::sync::atomic::Ordering::Release);
                });
            }
            Some(partitions) = gained.recv() => {
                let o = orchestrator.clone();
                tokio::spawn(async move {
                    match o.recover_partitions(&partitions).await {
                        Ok(n) => tracing::info!(partitions = ?partitions, republished = n, "recovered the sagas of partitions taken over"),
                        // Their timers still fire through `due_at`; the quiet sweep re-publishes.
                        Err(e) => tracing::warn!(error = %e, "recovering partitions taken over failed"),
                    }
                });
            }
            due = wheel.next_due(&watermark) => {
                let Some(due) = due else { break };
                // Only the owner of a saga's partition fires its timers; the others' copies
                // are dropped here (the owner has found them through `due_at`).
                for saga_id in due.into_iter().filter(|id| orchestrator.ownership.owns(*id)) {
                    if senders[shard_of(&saga_id, senders.len())].send(Work::Tick(saga_id)).await.is_err() {
                        break;
                    }
                }
            }
            msg = messages.next() => {
                if let Some((published, pending)) = msg.published() {
                    watermark.read(published, pending);
                }
                let span = msg.span();
                let max = orchestrator.options().max_message;
                let decoded = saga_protocol::limits::check(msg.payload(), max)
                    .map_err(|e| e.to_string())
                    .and_then(|()| ReplyEnvelope::decode(msg.payload()).map_err(|e| e.to_string()));
                match decoded {
                    Ok(reply) => {
                        span.record("saga.id", tracing::field::display(reply.saga_id));
                        span.record("saga.step", reply.step.as_str());
                        let shard = shard_of(&reply.saga_id, senders.len());
                        let work = Work::Reply(Box::new(msg), reply, span);
                        if senders[shard].send(work).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        dead_letter(&orchestrator, &msg, &e)
                            .instrument(span)
                            .await;
                    }
                }
            }
        }
    }
    // Stop pulling before draining: replies not pulled yet go to the other replicas at once.
    // Those pulled but not handed to a worker are redelivered after the ack wait (the
    // failover bound).
    drop(messages);
    // Let the workers finish what they hold; unacked messages are redelivered anyway.
    drop(senders);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("shutdown deadline passed with replies still in hand");
    }
    Ok(())
}
