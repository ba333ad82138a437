//! `saga orchestrator` and `saga participant`: long-running servers that stop on SIGTERM or
//! Ctrl-C, finishing the messages in hand within a deadline.

use super::{Error, OrchestratorArgs, ParticipantArgs, ParticipantKind};
use crate::runtime::{Options, Orchestrator};
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
    let options = Options {
        nats_url: args.connection.nats,
        database_url: args.connection.database,
        sagas_dir: args.sagas,
        stream_replicas: args.connection.stream_replicas,
        republish_after: args.republish_after,
        ..Options::default()
    };
    let shutdown = shutdown_on_signal();
    let orchestrator = Orchestrator::open(&options).await?;
    serve(orchestrator, args.listen, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the orchestrator loop and its HTTP API until `shutdown` is cancelled.
pub async fn serve(
    orchestrator: Orchestrator,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "orchestrator API listening");
    // The store announces terminal statuses on the feed served at /v1/feed/terminal.
    let (orchestrator, feed) = crate::watch::wrap(orchestrator);
    let app = crate::api::router(orchestrator.clone()).merge(crate::watch::router(feed));
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });
    let stopped = shutdown.clone();
    let result = orchestrator.run(stopped.cancelled_owned()).await;
    // The loop only ends on shutdown or failure; either way the API stops with it.
    shutdown.cancel();
    let _ = http.await;
    result?;
    Ok(())
}

pub async fn participant(args: ParticipantArgs) -> Result<ExitCode, Error> {
    let kind = match args.kind {
        ParticipantKind::Account => saga_participants::Kind::Account,
        ParticipantKind::Order => saga_participants::Kind::Order,
    };
    let options = saga_participants::Options {
        nats_url: args.connection.nats,
        database_url: args.connection.database,
        review_limit: args.review_limit,
        concurrency: args.concurrency,
        stream_replicas: args.connection.stream_replicas,
    };
    let shutdown = shutdown_on_signal();
    saga_participants::run(kind, options, shutdown.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}
