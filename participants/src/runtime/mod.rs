//! The participant runtime: consume → decode → inbox → handle → reply → ack.
//!
//! At start-up it opens the database, connects to NATS, creates the protocol streams if
//! missing, and gets or creates the durable pull consumer (waiting for as long as the
//! database or NATS is away, see [`saga_protocol::retry`]; only a shutdown or a permanent
//! error ends the wait) `participant-{name}` on
//! `SAGA_COMMANDS` (filter `saga.cmd.{name}.>`, explicit ack, unlimited redelivery, ack wait
//! and pull expiry of [`Options::failover_after`], see [`saga_protocol::consumers`]). Every
//! instance of a participant shares that consumer, so they split the work: a command held by an
//! instance that dies goes to another one after the failover bound.
//! It also serves the admin subject ([`crate::admin`]) in the queue group of the same name.
//!
//! With [`Options::listen`] set it serves `GET /metrics` there ([`crate::metrics`]).
//!
//! Up to `concurrency` commands are in hand at once, each in its own task
//! ([`message::process`]). When `shutdown` resolves it stops pulling, gives the commands in
//! hand [`SHUTDOWN_GRACE`] to finish, and returns; anything unfinished is redelivered later.
//! With [`Options::listen`] set it also serves `/livez` and `/readyz` ([`crate::health`])
//! from start-up until it returns.
//!
//! The runtime knows no participant by name: it runs any [`Participant`], built from its
//! opened store by the caller.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_participants::Error> {
//! use saga_participants::{Options, account::Account, runtime};
//!
//! let (ready_tx, ready) = tokio::sync::oneshot::channel();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let shutdown = async move { let _ = stopped.await; };
//! let task = tokio::spawn(runtime::run(Account::new, Options::default(), shutdown, ready_tx));
//! let _ = ready.await; // the consumer exists: commands published from now on are handled
//! let _ = stop.send(());
//! # Ok(()) }
//! ```

mod admin;
mod message;

use crate::participant::{Participant, consumer_name};
use crate::{Options, health, service, store::Store};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use saga_protocol::inbound::{Inbound, Pulling};
use saga_protocol::{consumers, streams, subjects};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use saga_protocol::inbound::SHUTDOWN_GRACE;
/// In-process deadline of one command: a slow command is given up (not acked, no reply) and
/// redelivered. While it runs, JetStream is told it is in progress, so it is not delivered
/// elsewhere meanwhile. Its batch may still commit it later; the redelivery then gets the
/// recorded reply from the inbox.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a participant could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] saga_sql::Error),
    #[error(transparent)]
    Connect(#[from] saga_protocol::servers::ConnectError),
    #[error("cannot create the protocol streams: {0}")]
    Streams(#[from] jetstream::context::CreateStreamError),
    #[error(transparent)]
    Consumer(#[from] saga_protocol::consumers::Error),
    #[error("cannot subscribe to the admin subject: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error(transparent)]
    Listen(#[from] health::ListenError),
    #[error(transparent)]
    Credentials(#[from] saga_protocol::auth::Error),
}

/// Runs the participant `build` makes of its opened store until `shutdown` resolves (see the
/// module docs), and sends on `ready` once the consumer and the admin subscription exist:
/// from then on, published commands are handled.
pub async fn run<P: Participant>(
    build: impl FnOnce(Store) -> P,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: oneshot::Sender<()>,
) -> Result<(), Error> {
    // Start-up waits for the database and NATS for as long as they are away; a shutdown
    // meanwhile ends the wait, so it is shared between start-up and the loop.
    let shutdown: Shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let connections = u32::try_from(options.concurrency.clamp(2, 16)).unwrap_or(16);
    // A database that is not up yet is waited out; bad settings are not.
    let store = saga_protocol::retry::transient(
        "open the participant's database",
        || async {
            let store =
                Store::open_with(&options.database_url, connections, options.durability).await?;
            Ok(store.with_inbox_window(options.inbox_window()))
        },
        saga_sql::Error::is_transient,
    );
    let store = tokio::select! {
        store = store => store?,
        () = shutdown.clone() => return Ok(()),
    };
    serve(build(store), &options, shutdown, ready).await
}

/// The shutdown signal, awaited by start-up and by the loop.
type Shutdown = futures::future::Shared<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>;

/// The pull consumer shared by every instance of participant `participant`, pulling at most `batch`
/// ahead, so none waits in a buffer past its ack wait.
async fn command_consumer(
    js: &jetstream::Context,
    participant: &str,
    batch: usize,
    failover_after: Duration,
    pulling: Pulling,
) -> Result<Inbound, Error> {
    let config = pull::Config {
        durable_name: Some(consumer_name(participant)),
        filter_subject: subjects::commands_for(participant),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: failover_after,
        max_deliver: -1,
        ..Default::default()
    };
    let stream = subjects::COMMANDS_STREAM;
    Ok(Inbound::open(js.clone(), stream, config, batch, failover_after, pulling).await?)
}

fn report(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        tracing::error!(error = %e, "a message task panicked");
    }
}

async fn serve<P: Participant>(
    participant: P,
    options: &Options,
    shutdown: Shutdown,
    ready: oneshot::Sender<()>,
) -> Result<(), Error> {
    let name = P::NAME;
    // NATS not up yet is waited out: the client keeps connecting in the background, and the
    // streams and the consumer are set up once it is there.
    let client_name = format!("saga-participant-{name}");
    let credentials = saga_protocol::auth::Credentials::from_settings(
        options.nats_nkey.as_deref(),
        options.nats_no_auth,
    )?
    .with_ca(options.nats_ca.clone());
    let role = saga_protocol::auth::Role::participant(name)?;
    let client =
        saga_protocol::servers::connect(&options.nats_url, &client_name, &role, &credentials)
            .await?;
    let js = jetstream::new(client.clone());
    let failover_after = options.failover_after.max(consumers::MIN_FAILOVER_AFTER);
    let concurrency = options.concurrency.max(1);
    let pulling = Pulling::default();
    // The probes answer from here on, while NATS may still be away: the pod is unready, not
    // restarted.
    let metrics_routes = crate::metrics::router(crate::metrics::Lag::new(js.clone(), name));
    let health = match options.listen {
        Some(addr) => {
            let checks = health::Health::new(
                name,
                participant.store().clone(),
                client.clone(),
                pulling.clone(),
            );
            Some(health::spawn(addr, checks, metrics_routes).await?)
        }
        None => None,
    };
    let setup = async {
        streams::ensure(&js, options.stream_replicas).await?;
        command_consumer(&js, name, concurrency, failover_after, pulling.clone()).await
    };
    let mut messages = tokio::select! {
        messages = setup => messages?,
        () = shutdown.clone() => {
            if let Some(server) = health {
                server.stop().await;
            }
            return Ok(());
        }
    };
    let mut admin_requests = client
        .queue_subscribe(crate::admin::subject(name), consumer_name(name))
        .await?;
    let ctx = Arc::new(message::Context {
        js,
        participant: name,
        consumer: consumer_name(name),
        commands: P::COMMANDS,
        metrics: crate::metrics::Metrics::new(name),
        ack_wait: failover_after,
        max_message: options.max_message,
    });
    let service = service::stack(participant.clone(), HANDLER_TIMEOUT);
    info!(participant = name, consumer = %ctx.consumer, concurrency, "participant ready");
    let _ = ready.send(());

    // The inbox's pruning stops when `stop_pruning` is dropped or sent on.
    let (stop_pruning, pruning) = oneshot::channel::<()>();
    let prune_task = tokio::spawn(crate::retention::keep_pruning(
        participant.store().clone(),
        crate::metrics::Pruned::new(name),
        async move {
            let _ = pruning.await;
        },
    ));
    let mut commands = JoinSet::new();
    let mut admins = JoinSet::new();
    let mut admin_open = true;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = commands.join_next(), if !commands.is_empty() => report(done),
            Some(done) = admins.join_next(), if !admins.is_empty() => report(done),
            request = admin_requests.next(), if admin_open => match request {
                Some(request) => {
                    admins.spawn(admin::answer(participant.clone(), client.clone(), request));
                }
                None => {
                    warn!("admin subscription closed");
                    admin_open = false;
                }
            },
            msg = messages.next(), if commands.len() < concurrency => {
                let (ctx, service) = (ctx.clone(), service.clone());
                commands.spawn(async move { message::process(&ctx, service, msg).await });
            }
        }
    }

    info!(
        participant = name,
        in_hand = commands.len(),
        "shutting down"
    );
    drop(stop_pruning);
    let _ = prune_task.await;
    drop(messages);
    if let Err(e) = admin_requests.unsubscribe().await {
        warn!(error = %e, "admin unsubscribe failed");
    }
    let drain = async {
        while let Some(done) = commands.join_next().await {
            report(done);
        }
        while let Some(done) = admins.join_next().await {
            report(done);
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!("commands still in hand after the grace period; they will be redelivered");
        commands.abort_all();
        admins.abort_all();
    }
    if let Err(e) = client.flush().await {
        warn!(error = %e, "flush on shutdown failed");
    }
    // Probes keep answering while the commands in hand drain, so the pod is not restarted
    // in the middle of its own graceful shutdown.
    if let Some(server) = health {
        server.stop().await;
    }
    participant.store().close().await;
    info!(participant = name, "participant stopped");
    Ok(())
}
