//! A participant as a `tower::Service<CommandEnvelope, Response = ReplyEnvelope, Error =
//! Error>`: the inbox and group commit behind it ([`crate::batch`]), the runtime's in-process
//! layers stacked on it with [`stack`] (a timeout; more compose the same way).
//!
//! ```no_run
//! # async fn demo(command: saga_protocol::CommandEnvelope) -> Result<(), Box<dyn std::error::Error>> {
//! use saga_participants::{account::Account, service, store::Store};
//! use tower::ServiceExt;
//!
//! let store = Store::open("sqlite:account.db", 4).await?;
//! let service = service::stack(Account::new(store), std::time::Duration::from_secs(20));
//! let reply = service.oneshot(command).await?;
//! # Ok(()) }
//! ```

use crate::batch::Batcher;
use crate::participant::{Error, Participant};
use futures::future::BoxFuture;
use saga_protocol::{CommandEnvelope, ReplyEnvelope};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{BoxError, Service, ServiceBuilder};

/// A participant as a tower service (see the module docs).
///
/// Commands handed to it at the same time share a transaction ([`crate::batch`]): each keeps
/// its own inbox check, business change and reply, and a batch that fails is handled again
/// command by command.
#[derive(Debug, Clone)]
pub struct Handler {
    batcher: Batcher,
}

impl Handler {
    /// The handler of `participant`; spawns its batch task on the current tokio runtime.
    pub fn new<P: Participant>(participant: P) -> Self {
        Handler {
            batcher: Batcher::spawn(participant),
        }
    }
}

impl Service<CommandEnvelope> for Handler {
    type Response = ReplyEnvelope;
    type Error = Error;
    type Future = BoxFuture<'static, Result<ReplyEnvelope, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: CommandEnvelope) -> Self::Future {
        let batcher = self.batcher.clone();
        Box::pin(async move { batcher.handle(command).await })
    }
}

/// The handler with the runtime's in-process layers: a `timeout` (a timed-out transaction is
/// dropped, hence rolled back, and the command redelivered), errors mapped back to [`Error`].
pub fn stack<P: Participant>(
    participant: P,
    timeout: Duration,
) -> impl Service<CommandEnvelope, Response = ReplyEnvelope, Error = Error, Future: Send>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .map_err(move |e: BoxError| from_layer(e, timeout))
        .timeout(timeout)
        .service(Handler::new(participant))
}

/// The [`Error`] behind a layer's error: a timeout, or the handler's own error.
fn from_layer(error: BoxError, timeout: Duration) -> Error {
    if error.is::<tower::timeout::error::Elapsed>() {
        return Error::Timeout(timeout);
    }
    match error.downcast::<Error>() {
        Ok(error) => *error,
        Err(other) => Error::Layer(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_errors_map_back_to_kinds() {
        let timeout = Duration::from_secs(3);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert!(matches!(from_layer(elapsed, timeout), Error::Timeout(d) if d == timeout));
        let inner: BoxError = Box::new(Error::Corrupt("x".into()));
        let back = from_layer(inner, timeout);
        assert!(matches!(back, Error::Corrupt(_)));
        assert!(!back.is_transient());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_transient());
    }
}
