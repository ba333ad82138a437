//! [`Transport`] in process memory: the runtime's tests run on it with a paused tokio clock
//! (a real nats-server does I/O the paused clock cannot account for), and the test plays the
//! participants.
//!
//! It keeps the contract of [`JetStream`](super::JetStream), checked by the same suite
//! (`tests/transport_contract.rs`): a command is stored once per message id however often it
//! is published; replies are delivered to one consumer at a time, in order, and one not
//! acknowledged is delivered again (at once when its delivery is dropped unsettled, as when
//! the process holding it dies; after the delay of a NAK). Nothing survives the process.
//! The process owns every partition ([`SoleOwner`]): there are no other replicas.

use super::{Delivery, Error, Lag, REPLY_CONSUMER, Replies, Result, Subscription, Transport};
use crate::clock::Clock;
use crate::partitions::{Keeper, LeaseOptions, Ownership, PARTITIONS};
use saga_protocol::inbound::Pulling;
use saga_protocol::{CommandEnvelope, ReplyEnvelope, Timestamp, subjects};
use saga_telemetry::saga::SagaTrace;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The transport in memory. Cheap to clone; clones share the same streams.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Box<dyn Clock>,
    state: Mutex<State>,
    /// Told when a reply is queued.
    queued: Notify,
    /// How many commands are stored (for [`MemoryTransport::wait_for_commands`]).
    stored: watch::Sender<usize>,
    /// How many replies were acknowledged (for [`MemoryTransport::wait_for_acked`]).
    acked: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Every publish, in order, including the copies dropped by message id.
    published: Vec<Published>,
    message_ids: HashSet<String>,
    replies: VecDeque<Queued>,
    /// Replies delivered and not settled yet.
    in_hand: u64,
    acked: u64,
    dead_letters: Vec<DeadLetter>,
    /// Why the transport is away, while it is.
    unavailable: Option<String>,
}

/// One publish of a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub subject: String,
    pub command: CommandEnvelope,
    /// False for a copy dropped because its message id was stored before.
    pub stored: bool,
}

/// A reply sent to the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub subject: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Queued {
    subject: String,
    payload: Vec<u8>,
    published: Timestamp,
}

impl MemoryTransport {
    /// An empty transport whose messages are stamped by `clock`.
    pub fn new(clock: impl Clock) -> Self {
        MemoryTransport {
            inner: Arc::new(Inner {
                clock: Box::new(clock),
                state: Mutex::new(State::default()),
                queued: Notify::new(),
                stored: watch::Sender::new(0),
                acked: watch::Sender::new(0),
            }),
        }
    }

    /// A participant's reply, as the participant publishes it.
    pub fn reply(&self, reply: &ReplyEnvelope) {
        self.deliver(&subjects::reply(&reply.participant), reply.encode());
    }

    /// Any bytes on a reply subject (a malformed reply, say).
    pub fn deliver(&self, subject: &str, payload: Vec<u8>) {
        let published = self.inner.clock.now();
        self.state().replies.push_back(Queued {
            subject: subject.to_string(),
            payload,
            published,
        });
        self.inner.queued.notify_one();
    }

    /// The commands stored, in order, each once.
    pub fn commands(&self) -> Vec<CommandEnvelope> {
        self.state()
            .published
            .iter()
            .filter(|p| p.stored)
            .map(|p| p.command.clone())
            .collect()
    }

    /// Every publish, including the copies dropped by message id.
    pub fn published(&self) -> Vec<Published> {
        self.state().published.clone()
    }

    /// Waits until at least `n` commands are stored and returns them all.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_commands(&self, n: usize) -> Vec<CommandEnvelope> {
        let mut stored = self.inner.stored.subscribe();
        // The sender lives in `self`, so the wait only ends when the count is reached.
        let _ = stored.wait_for(|count| *count >= n).await;
        self.commands()
    }

    /// Waits until at least `n` replies were acknowledged (each handled to its end: its
    /// events appended and their commands published, or dead-lettered).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_acked(&self, n: u64) {
        let mut acked = self.inner.acked.subscribe();
        let _ = acked.wait_for(|count| *count >= n).await;
    }

    /// The replies sent to the dead-letter stream, in order.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead_letters.clone()
    }

    /// How many replies were acknowledged.
    pub fn acked(&self) -> u64 {
        self.state().acked
    }

    /// Takes the transport away (`Some(reason)`: publishes fail as transient errors) or brings
    /// it back (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.state().unavailable = reason.map(str::to_string);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    fn requeue(&self, queued: Queued) {
        let mut state = self.state();
        state.in_hand = state.in_hand.saturating_sub(1);
        state.replies.push_front(queued);
        drop(state);
        self.inner.queued.notify_one();
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Transport for MemoryTransport {
    type Delivery = MemoryDelivery;
    type Replies = MemoryReplies;
    type Keeper = SoleOwner;

    async fn publish(&self, commands: &[&CommandEnvelope], _: Option<&SagaTrace>) -> Result<()> {
        let mut state = self.state();
        if let Some(reason) = &state.unavailable {
            return Err(Error::Unavailable(reason.clone()));
        }
        for cmd in commands {
            let stored = state
                .message_ids
                .insert(cmd.message_id.as_str().to_string());
            state.published.push(Published {
                subject: subjects::command(&cmd.participant, &cmd.command),
                command: (*cmd).clone(),
                stored,
            });
        }
        let count = state.published.iter().filter(|p| p.stored).count();
        drop(state);
        self.inner.stored.send_replace(count);
        Ok(())
    }

    async fn replies(&self, subscription: Subscription) -> Result<MemoryReplies> {
        subscription.pulling.set(true);
        Ok(MemoryReplies {
            transport: self.clone(),
            pulling: subscription.pulling,
        })
    }

    async fn leases(&self, options: LeaseOptions) -> Result<SoleOwner> {
        Ok(SoleOwner(options))
    }

    async fn reply_lag(&self) -> Result<Lag> {
        let state = self.state();
        Ok(Lag {
            consumer: REPLY_CONSUMER.to_string(),
            pending: state.replies.len() as u64,
            ack_pending: state.in_hand,
        })
    }

    fn connected(&self) -> Result<(), String> {
        match &self.state().unavailable {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }
}

/// The replies of a [`MemoryTransport`]. Several may be open: each reply goes to one of them.
#[derive(Debug)]
pub struct MemoryReplies {
    transport: MemoryTransport,
    pulling: Pulling,
}

impl Replies for MemoryReplies {
    type Delivery = MemoryDelivery;

    async fn next(&mut self) -> MemoryDelivery {
        loop {
            // Registered before looking, so a reply queued in between is not missed.
            let queued = self.transport.inner.queued.notified();
            {
                let mut state = self.transport.state();
                if let Some(next) = state.replies.pop_front() {
                    state.in_hand += 1;
                    let pending = state.replies.len() as u64;
                    return MemoryDelivery {
                        transport: self.transport.clone(),
                        queued: next,
                        pending,
                        settled: Mutex::new(false),
                    };
                }
            }
            queued.await;
        }
    }
}

impl Drop for MemoryReplies {
    fn drop(&mut self) {
        self.pulling.set(false);
    }
}

/// One reply delivered by a [`MemoryTransport`]. Dropped unsettled, it is delivered again.
#[derive(Debug)]
pub struct MemoryDelivery {
    transport: MemoryTransport,
    queued: Queued,
    pending: u64,
    settled: Mutex<bool>,
}

impl MemoryDelivery {
    /// Marks the delivery settled; false when it was settled before.
    fn settle(&self) -> bool {
        let mut settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
        !std::mem::replace(&mut *settled, true)
    }
}

impl Delivery for MemoryDelivery {
    fn subject(&self) -> &str {
        &self.queued.subject
    }

    fn payload(&self) -> &[u8] {
        &self.queued.payload
    }

    fn published(&self) -> Option<(Timestamp, u64)> {
        Some((self.queued.published, self.pending))
    }

    fn span(&self) -> tracing::Span {
        tracing::Span::none()
    }

    async fn in_progress<F>(&self, _: Duration, work: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        work.await
    }

    async fn ack(&self) -> Result<()> {
        if self.settle() {
            let mut state = self.transport.state();
            state.in_hand = state.in_hand.saturating_sub(1);
            state.acked += 1;
            let acked = state.acked;
            drop(state);
            self.transport.inner.acked.send_replace(acked);
        }
        Ok(())
    }

    async fn nak(&self, delay: Duration) -> Result<()> {
        if self.settle() {
            let (transport, queued) = (self.transport.clone(), self.queued.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                transport.requeue(queued);
            });
        }
        Ok(())
    }

    async fn dead_letter(&self, reason: &str) -> Result<()> {
        self.transport.state().dead_letters.push(DeadLetter {
            subject: self.queued.subject.clone(),
            payload: self.queued.payload.clone(),
            // Capped and blanked as JetStream's header holds it.
            reason: saga_protocol::dead_letter::header_safe(reason),
        });
        Ok(())
    }
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        if self.settle() {
            self.transport.requeue(self.queued.clone());
        }
    }
}

/// The lease keeper of a [`MemoryTransport`]: the one process owns every partition while it
/// runs.
#[derive(Debug)]
pub struct SoleOwner(LeaseOptions);

impl Keeper for SoleOwner {
    fn replica(&self) -> &str {
        &self.0.replica
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let LeaseOptions {
            bound,
            ownership,
            gained,
            ..
        } = self.0;
        let all: Vec<u16> = (0..PARTITIONS).collect();
        hold_all(&ownership, bound);
        let _ = gained.send(all);
        let mut renew = tokio::time::interval(bound / 3);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = renew.tick() => hold_all(&ownership, bound),
            }
        }
        for partition in 0..PARTITIONS {
            ownership.drop_partition(partition);
        }
    }
}

fn hold_all(ownership: &Ownership, bound: Duration) {
    let until = tokio::time::Instant::now() + bound;
    for partition in 0..PARTITIONS {
        ownership.hold(partition, until);
    }
}
