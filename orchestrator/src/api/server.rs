//! Serving the API: the socket is bound and answers its probes from the start, while the
//! orchestrator opens (which waits for as long as the database or NATS is away); [`serve`]
//! then installs the full API and runs the orchestrator until shutdown.
//!
//! ```no_run
//! # async fn demo(options: saga_orchestrator::runtime::Options) -> Result<(), Box<dyn std::error::Error>> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let tokens = saga_orchestrator::api::Tokens::none();
//! let api = saga_orchestrator::api::Server::bind("127.0.0.1:8080".parse().unwrap(), tokens, &shutdown).await?;
//! let orchestrator = saga_orchestrator::runtime::Orchestrator::open(&options).await?;
//! saga_orchestrator::api::serve(orchestrator, api, shutdown).await?;
//! # Ok(()) }
//! ```

use super::starting::Deferred;
use super::{Limits, Tokens};
use crate::runtime::{Orchestrator, SHUTDOWN_GRACE};
use crate::store::EventStore;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--listen {0} is reachable from other machines, so the API needs a token: set --token \
         or SAGA_API_TOKEN, or name callers in --api-tokens (clients send a token as \
         `Authorization: Bearer …`), or listen on 127.0.0.1"
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
    tokens: Tokens,
    metrics: Option<Metrics>,
    limits: Limits,
}

/// `/metrics` on a listener of its own, open (for a scrape port that only the monitoring
/// can reach), sampling the orchestrator's gauges once it is open.
struct Metrics {
    orchestrator: Arc<OnceLock<Orchestrator>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `listen` and serves the start-up probes on it until `shutdown`; an address
    /// reachable from other machines needs `tokens`.
    pub async fn bind(
        listen: SocketAddr,
        tokens: Tokens,
        shutdown: &CancellationToken,
    ) -> Result<Self, ServeError> {
        if !tokens.enabled() && !listen.ip().is_loopback() {
            return Err(ServeError::TokenRequired(listen));
        }
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
            tokens,
            metrics: None,
            limits: Limits::default(),
        })
    }

    /// Bounds every request by `limits` instead of the default ones.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves `/metrics` on `listen` instead of on the API, without authentication, until
    /// `shutdown`.
    pub async fn with_metrics_listener(
        mut self,
        listen: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen { listen, source })?;
        tracing::info!(%listen, "metrics listening");
        let orchestrator: Arc<OnceLock<Orchestrator>> = Arc::default();
        let cell = orchestrator.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let cell = cell.clone();
                async move { super::render_metrics(cell.get()).await }
            }),
        );
        let stop = shutdown.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        self.metrics = Some(Metrics { orchestrator, http });
        Ok(self)
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
        tokens,
        metrics,
        limits,
    } = server;
    if let Some(metrics) = &metrics {
        let _ = metrics.orchestrator.set(orchestrator.clone());
    }
    // The store announces terminal statuses on the feed served at /v1/feed/terminal.
    let (orchestrator, feed) = crate::watch::wrap(orchestrator);
    let app =
        super::routes(orchestrator.clone(), metrics.is_none()).merge(crate::watch::router(feed));
    let app = super::bounded(app, limits);
    reload_on_hangup(orchestrator.clone(), tokens.clone(), shutdown.clone());
    deferred.install(super::authenticate(app, tokens));
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
    if let Some(metrics) = metrics {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, metrics.http).await;
    }
    result?;
    Ok(())
}

/// Reloads the saga definitions and the API tokens file on SIGHUP, until `shutdown`.
fn reload_on_hangup<S: EventStore, T: Transport>(
    orchestrator: Orchestrator<S, T>,
    tokens: Tokens,
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
                _ = hangup.recv() => {
                    match orchestrator.reload().await {
                        Ok(registry) => tracing::info!(definitions = registry.definitions().count(), "saga definitions reloaded"),
                        Err(e) => tracing::error!("saga definitions not reloaded:\n{e}"),
                    }
                    match tokens.reload() {
                        Ok(callers) => tracing::info!(callers, "API tokens reloaded"),
                        Err(e) => tracing::error!("API tokens not reloaded, the previous ones stay: {e}"),
                    }
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (orchestrator, tokens, shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_non_loopback_listen_needs_a_token() {
        let shutdown = CancellationToken::new();
        let any: SocketAddr = ([0, 0, 0, 0], 0).into();
        let refused = Server::bind(any, Tokens::none(), &shutdown)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("SAGA_API_TOKEN"), "{refused}");
        let blank = Tokens::from_settings(Some(" "), None).map_err(|e| e.to_string());
        assert!(
            matches!(&blank, Ok(t) if !t.enabled()),
            "a blank token is none"
        );
        let local: SocketAddr = ([127, 0, 0, 1], 0).into();
        assert!(Server::bind(local, Tokens::none(), &shutdown).await.is_ok());
        let one = Tokens::from_settings(Some("t"), None).map_err(|e| e.to_string());
        assert!(matches!(&one, Ok(t) if t.enabled()));
        shutdown.cancel();
    }
}
