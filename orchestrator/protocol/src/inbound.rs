//! The messages of one durable pull consumer, kept flowing through every transient fault:
//! the reply consumer of the orchestrator and the command consumer of each participant read
//! through it.
//!
//! An [`Inbound`] owns the consumer and its pull. When the pull requests are lost (the node
//! holding them died, NATS restarted), when the message stream ends, or when the consumer was
//! deleted, it sets the consumer up again and pulls again, waiting between tries with the
//! shared backoff ([`crate::retry::backoff`]) for as long as NATS stays away. It never gives
//! up and never ends: the process decides when to stop.
//!
//! Whether it is pulling right now is published through [`Pulling`], which `/readyz` reads:
//! a process whose consumer is not pulling takes no work, and says so.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_protocol::consumers::Error> {
//! use async_nats::jetstream::consumer::pull;
//! use saga_protocol::inbound::{Inbound, Pulling};
//! use std::time::Duration;
//!
//! let js = async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
//! let config = pull::Config { durable_name: Some("participant-account".into()), ..Default::default() };
//! let pulling = Pulling::default();
//! let bound = Duration::from_secs(5);
//! let mut inbound = Inbound::open(js, "SAGA_COMMANDS", config, 16, bound, pulling.clone()).await?;
//! let message = inbound.next().await;
//! assert!(pulling.get());
//! # let _ = message; Ok(()) }
//! ```

use crate::consumers::{self, Error};
use async_nats::jetstream::{self, consumer::PullConsumer, consumer::pull};
use backon::BackoffBuilder;
use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long JetStream waits before redelivering a message whose handling hit a transient
/// failure (the database or NATS away for a moment): a NAK with this delay.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long the messages in hand may take to finish after shutdown is requested; what is
/// unfinished then is redelivered later. Kubernetes' `terminationGracePeriodSeconds` must
/// leave room for it (the manifests' test checks this).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Whether an [`Inbound`] is pulling now. Cheap to clone; read by health checks.
#[derive(Debug, Clone, Default)]
pub struct Pulling(Arc<AtomicBool>);

impl Pulling {
    /// True while a pull of the consumer is open.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Records whether the consumer is pulling (by the inbound loop, or a transport of its own).
    pub fn set(&self, pulling: bool) {
        self.0.store(pulling, Ordering::Release);
    }
}

/// The messages of one durable pull consumer (see the module docs).
pub struct Inbound {
    js: jetstream::Context,
    stream: String,
    config: pull::Config,
    batch: usize,
    bound: Duration,
    consumer: Option<PullConsumer>,
    messages: Option<pull::Stream>,
    /// The reopen under way while `messages` is `None`. Kept across calls of [`Inbound::next`],
    /// so a caller's `select!` that drops `next` whenever another branch fires (timers due
    /// every few milliseconds under load) cannot starve it by restarting it each time.
    reopening: Option<Reopening>,
    backoff: backon::ExponentialBackoff,
    pulling: Pulling,
}

/// A consumer set up (when it was missing) and its pull opened, or why not.
type Reopening = Pin<Box<dyn Future<Output = Result<(PullConsumer, pull::Stream), String>> + Send>>;

impl Inbound {
    /// Sets up consumer `config` on `stream` (at most `batch` messages pulled ahead, pull
    /// requests living `bound`), waiting out transient faults; `pulling` says from then on
    /// whether it pulls (from the first [`Inbound::next`]). Fails only on an error that trying
    /// again cannot cure (a conflicting consumer, a bad name).
    ///
    /// # Cancel safety
    /// Dropping the future stops the retries.
    pub async fn open(
        js: jetstream::Context,
        stream: &str,
        config: pull::Config,
        batch: usize,
        bound: Duration,
        pulling: Pulling,
    ) -> Result<Self, Error> {
        let consumer = consumers::ensure(&js, stream, config.clone()).await?;
        Ok(Inbound {
            js,
            stream: stream.to_string(),
            config,
            batch,
            bound,
            consumer: Some(consumer),
            messages: None,
            reopening: None,
            backoff: crate::retry::backoff().build(),
            pulling,
        })
    }

    /// The next message. Errors of the message stream are logged and handled here: lost pull
    /// requests and a deleted consumer are replaced; NATS away is waited out.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is only taken from the stream when this returns it, and a
    /// reopen under way goes on from where it was at the next call.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                self.reopen().await;
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => return message,
                Some(Err(e)) if consumers::must_pull_again(&e) => {
                    tracing::warn!(stream = %self.stream, error = %e, "pull requests lost, pulling again");
                    if e.kind() == pull::MessagesErrorKind::ConsumerDeleted {
                        self.consumer = None;
                    }
                    self.close();
                }
                Some(Err(e)) => {
                    tracing::warn!(stream = %self.stream, error = %e, "pulling messages")
                }
                None => {
                    tracing::warn!(stream = %self.stream, "message stream ended, pulling again");
                    self.close();
                }
            }
        }
    }

    fn close(&mut self) {
        self.messages = None;
        self.pulling.set(false);
    }

    /// Drives the reopen under way (beginning one, at once, when there is none) to its end.
    /// A failure begins the next one, which first waits the backoff's next delay.
    async fn reopen(&mut self) {
        if self.reopening.is_none() {
            self.reopening = Some(self.begin_reopen(Duration::ZERO));
        }
        let Some(reopening) = self.reopening.as_mut() else {
            return;
        };
        match reopening.await {
            Ok((consumer, messages)) => {
                self.reopening = None;
                self.consumer = Some(consumer);
                self.messages = Some(messages);
                self.pulling.set(true);
                self.backoff = crate::retry::backoff().build();
            }
            Err(error) => {
                let after = self.backoff.next().unwrap_or(crate::retry::MAX_DELAY);
                tracing::warn!(stream = %self.stream, %error, retry_in = ?after, "cannot pull yet, trying again");
                self.reopening = Some(self.begin_reopen(after));
            }
        }
    }

    /// A reopen that waits `after`, sets the consumer up if it is missing, and pulls.
    fn begin_reopen(&self, after: Duration) -> Reopening {
        let (js, stream, config) = (self.js.clone(), self.stream.clone(), self.config.clone());
        let (consumer, batch, bound) = (self.consumer.clone(), self.batch, self.bound);
        Box::pin(async move {
            tokio::time::sleep(after).await;
            let consumer = match consumer {
                Some(consumer) => consumer,
                None => consumers::ensure_once(&js, &stream, config)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let messages = consumers::pull(&consumer, batch, bound)
                .await
                .map_err(|e| e.to_string())?;
            Ok((consumer, messages))
        })
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.pulling.set(false);
    }
}
