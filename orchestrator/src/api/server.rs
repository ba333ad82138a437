//! Serving the API: the socket is bound and answers its probes from the start, while the
//! orchestrator opens (which waits for as long as the database or NATS is away); [`serve`]
//! then installs the full API and runs the orchestrator until shutdown.
//!
//! ```no_run
//! # async fn demo(options: saga_orchestrator::runtime::Options) -> Result<(), Box<dyn std::error::Error>> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let api = saga_orchestrator::api::Server::bind("127.0.0.1:8080".parse().unwrap(), None, &shutdown).await?;
//! let orchestrator = saga_orchestrator::runtime::Orchestrator::open(&options).await?;
//! saga_orchestrator::api::serve(orchestrator, api, shutdown).await?;
//! # Ok(()) }
//! ```

use super::starting::Deferred;
use crate::runtime::{Orchestrator, SHUTDOWN_GRACE};
use crate::store::EventStore;
use crate::transport::Transport;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--listen {0} is reachable from other machines, so the API needs a token: set --token \
         or SAGA_API_TOKEN (clients send it as `Authorization: Bearer …`), or listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::Error),
}

/// The API's socket, bound and serving the start-up probes (`/livez` 200, `/readyz` 503
/// "starting", see [`super::starting`]) until [`serve`] installs the full API.
pub struct Server {
    deferred: Deferred,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    listen: SocketAddr,
    token: Option<String>,
}

impl Server {
    /// Binds `listen` and serves the start-up probes on it until `shutdown`; an address
    /// reachable from other machines needs a `token`.
    pub async fn bind(
        listen: SocketAddr,
        token: Option<String>,
        shutdown: &CancellationToken,
    ) -> Result<Self, ServeError> {
        let token = api_token(listen, token)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen { listen, source })?;
        tracing::info!(%listen, "orchestrator API listening");
        let deferred = Deferred::default();
        let app = deferred.router();
        let stop = shutdown.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Ok(Server {
            deferred,
            http,
            listen,
            token,
        })
    }
}

/// Runs the orchestrator loop and its HTTP API on `server` until `shutdown` is cancelled.
pub async fn serve(
    orchestrator: Orchestrator,
    server: Server,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let Server {
        deferred,
        http,
        listen,
        token,
    } = server;
    // The store announces terminal statuses on the feed served at /v1/feed/terminal.
    let (orchestrator, feed) = crate::watch::wrap(orchestrator);
    let app = super::router(orchestrator.clone()).merge(crate::watch::router(feed));
    reload_on_hangup(orchestrator.clone(), shutdown.clone());
    let app = match token {
        Some(token) => super::require_token(app, token),
        None => app,
    };
    deferred.install(app);
    tracing::info!(%listen, "orchestrator API serving");
    let stopped = shutdown.clone();
    let result = orchestrator.run(stopped.cancelled_owned()).await;
    // The loop only ends on shutdown or failure; either way the API stops with it. Requests
    // in progress get the same grace as replies in hand: a client holding one open must not
    // keep the process past its termination grace period.
    shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, http).await.is_err() {
        tracing::warn!("HTTP requests still open after the shutdown grace; closing them");
    }
    result?;
    Ok(())
}

/// The API's token: none is fine on loopback, but an API reachable from other machines must
/// have one. A blank token is none.
fn api_token(listen: SocketAddr, token: Option<String>) -> Result<Option<String>, ServeError> {
    let token = token.filter(|t| !t.trim().is_empty());
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(ServeError::TokenRequired(listen));
    }
    Ok(token)
}

/// Reloads the saga definitions on SIGHUP, until `shutdown`.
fn reload_on_hangup<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    shutdown: CancellationToken,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hangup.recv() => match orchestrator.reload().await {
                    Ok(registry) => tracing::info!(definitions = registry.definitions().count(), "saga definitions reloaded"),
                    Err(e) => tracing::error!("saga definitions not reloaded:\n{e}"),
                },
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (orchestrator, shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_listen_needs_a_token() {
        let local: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let any: SocketAddr = ([0, 0, 0, 0], 8080).into();
        assert!(matches!(api_token(local, None), Ok(None)));
        let refused = api_token(any, None).map_err(|e| e.to_string());
        assert!(
            matches!(&refused, Err(e) if e.contains("SAGA_API_TOKEN")),
            "{refused:?}"
        );
        assert!(
            api_token(any, Some(" ".into())).is_err(),
            "a blank token is none"
        );
        assert!(matches!(api_token(any, Some("t".into())), Ok(Some(t)) if t == "t"));
    }
}
