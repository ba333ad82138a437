//! `saga orchestrator` and `saga participant`: long-running servers that stop on SIGTERM or
//! Ctrl-C, finishing the messages in hand within a deadline.

use super::{Error, OrchestratorArgs, ParticipantArgs, ParticipantKind};
use crate::runtime::{Options, Orchestrator, SHUTDOWN_GRACE};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

pub async fn orchestrator(args: OrchestratorArgs) -> Result<ExitCode, Error> {
    let options =
        Options {
            nats_url: args.connection.nats,
            database_url: args.connection.database,
            sagas_dir: args.sagas,
            stream_replicas: args.connection.stream_replicas,
            failover_after: args.connection.failover_after,
            republish_after: args.republish_after,
            overdue_after: args.overdue_after,
            hot_sagas: args.hot_sagas,
            replica_id: Some(args.replica_id.unwrap_or_else(|| {
                crate::runtime::partitions::stable_replica_id(args.listen.port())
            })),
            ..Options::default()
        };
    let shutdown = shutdown_on_signal();
    // What can fail about serving (a missing token, a port in use) fails before anything
    // else starts; the probes answer from here on.
    let api = Api::bind(args.listen, args.token, &shutdown).await?;
    // Opening waits for the database and NATS for as long as they are away; a signal
    // meanwhile stops the process cleanly.
    let orchestrator = tokio::select! {
        opened = Orchestrator::open(&options) => opened?,
        () = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
    };
    serve(orchestrator, api, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The API's token: none is fine on loopback, but an API reachable from other machines must
/// have one.
fn api_token(listen: SocketAddr, token: Option<String>) -> Result<Option<String>, Error> {
    let token = token.filter(|t| !t.trim().is_empty());
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(format!(
            "--listen {listen} is reachable from other machines, so the API needs a token: \
             set --token or SAGA_API_TOKEN (clients send it as `Authorization: Bearer …`), \
             or listen on 127.0.0.1"
        )
        .into());
    }
    Ok(token)
}

/// The API's socket, bound and served from the start: while the orchestrator opens (which
/// waits for as long as the database or NATS is away) its probes answer, `/livez` 200 and
/// `/readyz` 503 "starting" (see [`crate::api::starting`]); [`serve`] installs the full API.
pub struct Api {
    deferred: crate::api::starting::Deferred,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    listen: SocketAddr,
    token: Option<String>,
}

impl Api {
    /// Binds `listen` and serves the start-up probes on it until `shutdown`; an address
    /// reachable from other machines needs a `token`.
    pub async fn bind(
        listen: SocketAddr,
        token: Option<String>,
        shutdown: &CancellationToken,
    ) -> Result<Self, Error> {
        let token = api_token(listen, token)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        tracing::info!(%listen, "orchestrator API listening");
        let deferred = crate::api::starting::Deferred::default();
        let app = deferred.router();
        let stop = shutdown.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Ok(Api {
            deferred,
            http,
            listen,
            token,
        })
    }
}

/// Runs the orchestrator loop and its HTTP API until `shutdown` is cancelled.
pub async fn serve(
    orchestrator: Orchestrator,
    api: Api,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let Api {
        deferred,
        http,
        listen,
        token,
    } = api;
    // The store announces terminal statuses on the feed served at /v1/feed/terminal.
    let (orchestrator, feed) = crate::watch::wrap(orchestrator);
    let app = crate::api::router(orchestrator.clone()).merge(crate::watch::router(feed));
    reload_on_hangup(orchestrator.clone(), shutdown.clone());
    let app = match token {
        Some(token) => crate::api::require_token(app, token),
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

/// Reloads the saga definitions on SIGHUP, until `shutdown`.
fn reload_on_hangup<S: crate::store::EventStore>(
    orchestrator: Orchestrator<S>,
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

/// Checks a participant's commands against the catalogue, if there is one.
pub fn check_catalogue(
    kind: saga_participants::Kind,
    catalogue: &std::path::Path,
) -> Result<(), Error> {
    use saga_participants::handler::Participant;
    if !catalogue.exists() {
        tracing::warn!(path = %catalogue.display(), "no participants catalogue; commands not checked");
        return Ok(());
    }
    let catalogue = saga_core::Catalogue::from_file(catalogue).map_err(|e| e.to_string())?;
    let implemented = match kind {
        saga_participants::Kind::Account => saga_participants::account::Account::COMMANDS,
        saga_participants::Kind::Order => saga_participants::order::Orders::COMMANDS,
    };
    catalogue
        .check_participant(kind.as_str(), implemented)
        .map_err(|e| format!("the {kind} participant does not match the catalogue:\n{e}").into())
}

pub async fn participant(args: ParticipantArgs) -> Result<ExitCode, Error> {
    let kind = match args.kind {
        ParticipantKind::Account => saga_participants::Kind::Account,
        ParticipantKind::Order => saga_participants::Kind::Order,
    };
    check_catalogue(kind, &args.catalogue)?;
    let options = saga_participants::Options {
        nats_url: args.connection.nats,
        database_url: args.connection.database,
        review_limit: args.review_limit,
        concurrency: args.concurrency,
        stream_replicas: args.connection.stream_replicas,
        listen: args.listen,
        failover_after: args.connection.failover_after,
    };
    let shutdown = shutdown_on_signal();
    saga_participants::run(kind, options, shutdown.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
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
