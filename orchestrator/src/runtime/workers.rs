//! The workers of a replica: each handles the replies and timer ticks of the sagas its
//! shard holds, one at a time and in order, and settles each reply (ack, NAK for a transient
//! failure, dead letter with the reason for one that cannot apply).

use super::{Handled, Orchestrator};
use crate::store::EventStore;
use crate::transport::{Delivery, REPLY_CONSUMER, Transport};
use saga_core::Input;
use saga_protocol::ReplyEnvelope;
use saga_protocol::inbound::RETRY_DELAY;
use std::hash::{Hash, Hasher};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// Work for a saga's worker.
pub(super) enum Work<D> {
    Reply(Box<D>, ReplyEnvelope, tracing::Span),
    Tick(Uuid),
}

/// The worker of `saga_id` among `shards`: the same for every input of the saga.
pub(super) fn shard_of(saga_id: &Uuid, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    saga_id.hash(&mut h);
    usize::try_from(h.finish() % shards as u64).unwrap_or(0)
}

pub(super) async fn work<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    mut rx: mpsc::Receiver<Work<T::Delivery>>,
) {
    while let Some(work) = rx.recv().await {
        let (msg, reply, span) = match work {
            Work::Reply(msg, reply, span) => (msg, reply, span),
            Work::Tick(saga_id) => {
                tick(&orchestrator, saga_id).await;
                continue;
            }
        };
        let ack_wait = orchestrator.failover_bound();
        msg.in_progress(ack_wait, handle(&orchestrator, &*msg, &reply))
            .instrument(span)
            .await;
    }
}

/// Handles one reply to its ack, NAK or dead letter.
async fn handle<S: EventStore, T: Transport>(
    orchestrator: &Orchestrator<S, T>,
    msg: &T::Delivery,
    reply: &ReplyEnvelope,
) {
    match orchestrator.handle_reply(reply).await {
        Ok(Handled::Applied | Handled::Unchanged) => ack(msg).await,
        Ok(Handled::Refused(reason)) => {
            dead_letter(orchestrator, msg, &reason.to_string()).await;
        }
        Err(e) if e.is_transient() => {
            tracing::Span::current().set_status(opentelemetry::trace::Status::error(e.to_string()));
            tracing::warn!(saga_id = %reply.saga_id, error = %e, "reply will be retried");
            if let Err(e) = msg.nak(RETRY_DELAY).await {
                tracing::warn!(error = %e, "cannot nak a reply");
            }
        }
        Err(e) => {
            tracing::error!(saga_id = %reply.saga_id, error = %e, "reply cannot be handled");
            dead_letter(orchestrator, msg, &e.to_string()).await;
        }
    }
}

/// Fires a saga's due timers. A failure re-arms the timer shortly, since the tick is not a
/// message that JetStream would redeliver.
async fn tick<S: EventStore, T: Transport>(orchestrator: &Orchestrator<S, T>, saga_id: Uuid) {
    match orchestrator.handle(saga_id, Input::Tick).await {
        Ok(Handled::Applied | Handled::Unchanged) => {}
        Ok(Handled::Refused(reason)) => tracing::debug!(%saga_id, %reason, "tick refused"),
        Err(e) => {
            tracing::warn!(%saga_id, error = %e, "timer will fire again");
            orchestrator
                .timers()
                .schedule(saga_id, orchestrator.now().plus(RETRY_DELAY));
        }
    }
}

async fn ack(msg: &impl Delivery) {
    if let Err(e) = msg.ack().await {
        // Not fatal: the reply is redelivered and recognised as already handled.
        tracing::warn!(error = %e, "cannot ack a reply");
    }
}

pub(super) async fn dead_letter<S: EventStore, T: Transport>(
    orchestrator: &Orchestrator<S, T>,
    msg: &T::Delivery,
    reason: &str,
) {
    tracing::warn!(subject = %msg.subject(), reason, "dead-lettering a reply");
    tracing::Span::current().set_status(opentelemetry::trace::Status::error(format!(
        "dead-lettered: {reason}"
    )));
    match msg.dead_letter(reason).await {
        Ok(()) => {
            orchestrator.dead_lettered(REPLY_CONSUMER);
            ack(msg).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot dead-letter; the reply will be redelivered");
            let _ = msg.nak(RETRY_DELAY).await;
        }
    }
}
