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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Whether an [`Inbound`] is pulling now. Cheap to clone; read by health checks.
#[derive(Debug, Clone, Default)]
pub struct Pulling(Arc<AtomicBool>);

impl Pulling {
    /// True while a pull of the consumer is open.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, pulling: bool) {
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
    backoff: backon::ExponentialBackoff,
    retry_at: Instant,
    pulling: Pulling,
}

impl Inbound {
    /// Sets up consumer `config` on `stream` and opens its pull (at most `batch` messages
    /// ahead, pull requests living `bound`), waiting out transient faults; `pulling` says from
    /// then on whether it pulls. Fails only on an error that trying again cannot cure (a
    /// conflicting consumer, a bad name).
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
        let mut inbound = Inbound {
            js,
            stream: stream.to_string(),
            config,
            batch,
            bound,
            consumer: Some(consumer),
            messages: None,
            backoff: crate::retry::backoff().build(),
            retry_at: Instant::now(),
            pulling,
        };
        inbound.reopen().await;
        Ok(inbound)
    }

    /// The next message. Errors of the message stream are logged and handled here: lost pull
    /// requests and a deleted consumer are replaced; NATS away is waited out.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is only taken from the stream when this returns it, and a
    /// reopen interrupted half-way is begun again by the next call.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                tokio::time::sleep_until(self.retry_at).await;
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
        // The first reopen after a working pull is at once; failures after it back off.
        self.retry_at = Instant::now();
    }

    /// One try at setting up the consumer (when missing) and pulling; a failure schedules the
    /// next try after the backoff.
    async fn reopen(&mut self) {
        match self.try_reopen().await {
            Ok(messages) => {
                self.messages = Some(messages);
                self.pulling.set(true);
                self.backoff = crate::retry::backoff().build();
            }
            Err(error) => {
                let after = self.backoff.next().unwrap_or(crate::retry::MAX_DELAY);
                tracing::warn!(stream = %self.stream, %error, retry_in = ?after, "cannot pull yet, trying again");
                self.retry_at = Instant::now() + after;
            }
        }
    }

    async fn try_reopen(&mut self) -> Result<pull::Stream, String> {
        let consumer = match &self.consumer {
            Some(consumer) => consumer.clone(),
            None => {
                let consumer = consumers::ensure_once(&self.js, &self.stream, self.config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                self.consumer = Some(consumer.clone());
                consumer
            }
        };
        consumers::pull(&consumer, self.batch, self.bound)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.pulling.set(false);
    }
}
