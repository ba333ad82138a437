//! `saga orchestrator` and `saga participant`: long-running servers that stop on SIGTERM or
//! Ctrl-C, finishing the messages in hand within a deadline.

use super::{Error, OrchestratorArgs, ParticipantArgs, ParticipantKind};
use saga_orchestrator::api::serve;
use saga_orchestrator::runtime::{Options, Orchestrator};
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
        nats_nkey: args.connection.nats_auth.nkey,
        nats_no_auth: args.connection.nats_auth.no_auth,
        nats_ca: args.connection.nats_auth.ca.clone(),
        database_url: args.connection.database,
        durability: args.connection.durability,
        sagas_dir: args.sagas,
        stream_replicas: args.connection.stream_replicas,
        failover_after: args.connection.failover_after,
        republish_after: args.republish_after,
        overdue_after: args.overdue_after,
        idempotency_window: args.idempotency_window,
        snapshot_every: args.snapshot_every,
        retention: args.retention,
        max_message: args.connection.max_message,
        hot_sagas: args.hot_sagas,
        replica_id: Some(args.replica_id.unwrap_or_else(|| {
            saga_orchestrator::partitions::stable_replica_id(args.api.listen.port())
        })),
        ..Options::default()
    };
    let shutdown = shutdown_on_signal();
    // What can fail about serving (a missing token, a port in use) fails before anything
    // else starts; the probes answer from here on.
    let mut api = args.api.bind(&shutdown).await?;
    if let Some(metrics) = args.metrics_listen {
        api = api.with_metrics_listener(metrics, &shutdown).await?;
    }
    // Opening waits for the database and NATS for as long as they are away; a signal
    // meanwhile stops the process cleanly.
    let orchestrator = tokio::select! {
        opened = Orchestrator::open(&options) => opened?,
        () = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
    };
    serve(orchestrator, api, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Checks a participant's commands against the catalogue, if there is one.
pub fn check_catalogue(
    kind: saga_participants::Kind,
    catalogue: &std::path::Path,
) -> Result<(), Error> {
    if !catalogue.exists() {
        tracing::warn!(path = %catalogue.display(), "no participants catalogue; commands not checked");
        return Ok(());
    }
    let catalogue = saga_core::Catalogue::from_file(catalogue).map_err(|e| e.to_string())?;
    let implemented = saga_participants::builtin::commands(kind);
    catalogue
        .check_participant(kind.as_str(), implemented)
        .map_err(|e| format!("the {kind} participant does not match the catalogue:\n{e}").into())
}

pub async fn participant(args: ParticipantArgs) -> Result<ExitCode, Error> {
    let kind = match args.kind {
        ParticipantKind::Account => saga_participants::Kind::Account,
        ParticipantKind::Order => saga_participants::Kind::Order,
        ParticipantKind::Inventory => saga_participants::Kind::Inventory,
    };
    check_catalogue(kind, &args.catalogue)?;
    let options = saga_participants::Options {
        nats_url: args.connection.nats,
        nats_nkey: args.connection.nats_auth.nkey,
        nats_no_auth: args.connection.nats_auth.no_auth,
        nats_ca: args.connection.nats_auth.ca.clone(),
        database_url: args.connection.database,
        review_limit: args.review_limit,
        concurrency: args.concurrency,
        stream_replicas: args.connection.stream_replicas,
        listen: args.listen,
        failover_after: args.connection.failover_after,
        max_message: args.connection.max_message,
        inbox_window: args.inbox_window,
        max_clock_skew: args.max_clock_skew,
        statement_period: args.statement_period,
        statement_cutoff: args.statement_cutoff,
        statement_max_delay: args.statement_max_delay,
        durability: args.connection.durability,
    };
    let shutdown = shutdown_on_signal();
    saga_participants::run(kind, options, shutdown.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}
