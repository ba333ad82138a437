//! Health endpoints of a participant process, for Kubernetes probes.
//!
//! | path      | answer                                                                  |
//! |-----------|-------------------------------------------------------------------------|
//! | `/livez`  | 200 while the process serves at all                                     |
//! | `/readyz` | 200 when the database answers, NATS is connected, the participant's durable consumer exists and its commands are being pulled; 503 otherwise |
//!
//! Both answer with a small JSON report naming each check, so a person reading a failing
//! probe sees which dependency is down:
//! `{"status":"not ready","checks":{"command_consumer_pulling":"not pulling","consumer":"…","database":"ok","nats":"disconnected"}}`.
//!
//! Liveness deliberately checks nothing outside the process: a database outage must make the
//! pod unready (no new work routed to it), not restart it, which would not help.
//!
//! The server is started by the runtime when [`Options::listen`](crate::Options::listen) is set:
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_participants::Error> {
//! use saga_participants::{Kind, Options, run};
//!
//! let options = Options {
//!     database_url: "sqlite:account.db".into(),
//!     listen: Some("0.0.0.0:8080".parse().unwrap()),
//!     ..Options::default()
//! };
//! run(Kind::Account, options, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use crate::store::Store;
use async_nats::jetstream::{self, consumer::pull};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use saga_protocol::inbound::Pulling;
use saga_protocol::subjects;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long one check may take before it counts as failed. Below the probes' timeout, so a
/// hung dependency gives a 503 with its name rather than a probe timeout that says nothing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` checks: the participant's database, its NATS connection and its consumer.
#[derive(Clone)]
pub struct Health {
    participant: &'static str,
    store: Store,
    client: async_nats::Client,
    js: jetstream::Context,
    pulling: Pulling,
}

/// The body of `/livez` and `/readyz`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `ready`, `not ready` or `live`.
    pub status: &'static str,
    /// Each check by name: `ok`, or why it failed.
    pub checks: BTreeMap<&'static str, String>,
}

impl Health {
    /// The checks of participant `participant`; `pulling` is its command consumer's flag.
    pub fn new(
        participant: &'static str,
        store: Store,
        client: async_nats::Client,
        pulling: Pulling,
    ) -> Self {
        let js = jetstream::new(client.clone());
        Health {
            participant,
            store,
            client,
            js,
            pulling,
        }
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn check(&self) -> Report {
        let (database, nats, consumer) =
            tokio::join!(self.database(), self.nats(), self.consumer());
        let checks = BTreeMap::from([
            ("database", outcome(database)),
            ("nats", outcome(nats)),
            ("consumer", outcome(consumer)),
            ("command_consumer_pulling", outcome(self.pulling())),
        ]);
        let ready = checks.values().all(|c| c == "ok");
        Report {
            status: if ready { "ready" } else { "not ready" },
            checks,
        }
    }

    /// A consumer that exists but is not pulled (its pull requests lost with a NATS node,
    /// and not replaced yet) delivers nothing to this process.
    fn pulling(&self) -> Result<(), String> {
        if self.pulling.get() {
            Ok(())
        } else {
            Err("not pulling".to_string())
        }
    }

    async fn database(&self) -> Result<(), String> {
        let ping = sqlx::query("SELECT 1").execute(self.store.pool());
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                // The driver's text (hosts, users) goes to the log, not to whoever can probe.
                tracing::warn!(error = %e, "readiness: the database is unreachable");
                Err("unreachable".to_string())
            }
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    async fn nats(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(state.to_string()),
        }
    }

    /// The durable consumer is what delivers commands: a NATS that lost its JetStream state
    /// (or a consumer deleted by hand) leaves the process connected but idle.
    async fn consumer(&self) -> Result<(), String> {
        let name = crate::participant::consumer_name(self.participant);
        let info = self
            .js
            .get_consumer_from_stream::<pull::Config, _, _>(&name, subjects::COMMANDS_STREAM);
        match tokio::time::timeout(CHECK_TIMEOUT, info).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, consumer = %name, "readiness: cannot read the consumer");
                Err(format!("{name}: cannot be read"))
            }
            Err(_) => Err(format!("{name}: no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

fn outcome(result: Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(reason) => reason,
    }
}

/// The `/livez` and `/readyz` routes over `health`.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/livez", get(live))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn live() -> Json<Report> {
    Json(Report {
        status: "live",
        checks: BTreeMap::new(),
    })
}

async fn ready(State(health): State<Health>) -> (StatusCode, Json<Report>) {
    let report = health.check().await;
    let status = if report.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// A running health server; [`Server::stop`] ends it.
pub struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Why the health server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the health endpoints: {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` and serves [`router`] in a task until [`Server::stop`].
///
/// Binding happens before this returns, so a taken port is a start-up error rather than a
/// probe that fails later for no visible reason.
/// `extra` routes (the metrics) are served beside the probes.
pub async fn spawn(addr: SocketAddr, health: Health, extra: Router) -> Result<Server, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(health).merge(extra);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "health endpoints listening");
    Ok(Server { stop, task })
}

impl Server {
    /// Stops accepting connections and waits for the requests in progress (each bounded by
    /// [`CHECK_TIMEOUT`] per check).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "health server failed"),
            Err(e) => tracing::warn!(error = %e, "health server task failed"),
        }
    }
}
