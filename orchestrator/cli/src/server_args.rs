//! The arguments of the server commands (`dev`, `orchestrator`, `participant`): every
//! setting has a flag and an environment variable, and the telemetry settings are the
//! standard OpenTelemetry variables.

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory for the SQLite files and the NATS store.
    #[arg(long, env = "SAGA_DATA_DIR", default_value = ".saga")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub api: ServeApiArgs,
    /// Port of the nats-server started for you (default: 4222 if free, else any free port).
    #[arg(long, env = "SAGA_NATS_PORT")]
    pub nats_port: Option<u16>,
    /// Directory of saga definitions.
    #[arg(long, env = "SAGA_SAGAS_DIR", default_value = "sagas")]
    pub sagas: PathBuf,
    /// How many demo sagas to run at start-up (0 for none).
    #[arg(long, default_value_t = 12)]
    pub demo: usize,
    /// Run the demo, print the summary and exit instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_after_demo: bool,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// The HTTP API of a server process: where it listens, who may call it, what it accepts.
#[derive(Debug, Clone, Args)]
pub struct ServeApiArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "SAGA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// An admin bearer token of the API, named `admin` (a token or --api-tokens is required
    /// with a non-loopback --listen).
    #[arg(long, env = "SAGA_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File of named API callers, each with a role (read, operate, admin) and its token's
    /// SHA-256; written by `saga api token`, read again on SIGHUP.
    #[arg(long, env = "SAGA_API_TOKENS")]
    pub api_tokens: Option<PathBuf>,
    /// Largest request body the API accepts, in bytes; a larger one is refused with 413.
    #[arg(long, env = "SAGA_API_MAX_BODY", default_value_t = saga_orchestrator::api::DEFAULT_MAX_BODY)]
    pub api_max_body: usize,
}

impl ServeApiArgs {
    /// Binds the API's socket (see [`saga_orchestrator::api::Server::bind`]) with these
    /// callers and limits.
    pub async fn bind(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<saga_orchestrator::api::Server, super::Error> {
        let tokens = saga_orchestrator::api::Tokens::from_settings(
            self.token.as_deref(),
            self.api_tokens.as_deref(),
        )?;
        let limits = saga_orchestrator::api::Limits {
            max_body: self.api_max_body,
        };
        let server = saga_orchestrator::api::Server::bind(self.listen, tokens, shutdown).await?;
        Ok(server.with_limits(limits))
    }
}

/// Traces, metrics and logs of a server process.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// OTLP receiver to export traces to, e.g. http://127.0.0.1:4318 (no export when unset).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol: http/protobuf, or grpc (builds with the `otlp-grpc` feature).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: saga_telemetry::Protocol,
    /// Export metrics over OTLP too (they are always served on /metrics).
    #[arg(long, env = "SAGA_OTLP_METRICS")]
    pub otlp_metrics: bool,
    /// service.name of this process's spans and metrics [default: saga-orchestrator,
    /// saga-account, saga-order, or saga in dev].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// Trace sampler: parentbased_always_on (default), always_on, always_off, traceidratio,
    /// parentbased_always_off, parentbased_traceidratio. A saga is sampled whole or not at all.
    #[arg(long, env = "OTEL_TRACES_SAMPLER")]
    pub traces_sampler: Option<String>,
    /// Ratio of the *traceidratio samplers, e.g. 0.1.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub traces_sampler_arg: Option<String>,
    /// Log lines as text or json (one object a line, with the trace and span ids).
    #[arg(long, env = "SAGA_LOG_FORMAT", default_value = "text")]
    pub log_format: saga_telemetry::LogFormat,
}

impl TelemetryArgs {
    /// The settings of a process named `service` that logs at `default_filter` unless
    /// `RUST_LOG` says otherwise.
    pub fn settings(&self, service: &str, default_filter: &str) -> saga_telemetry::Settings {
        saga_telemetry::Settings {
            service_name: self
                .service_name
                .clone()
                .unwrap_or_else(|| service.to_string()),
            otlp_endpoint: self.otlp_endpoint.clone().filter(|e| !e.trim().is_empty()),
            otlp_protocol: self.otlp_protocol,
            otlp_metrics: self.otlp_metrics,
            sampler: self.traces_sampler.clone(),
            sampler_arg: self.traces_sampler_arg.clone(),
            log_format: self.log_format,
            default_log_filter: default_filter.to_string(),
        }
    }
}

/// How a process authenticates to NATS (see `saga nats credentials`).
#[derive(Debug, Clone, Default, Args)]
pub struct NatsAuth {
    /// NKey seed file this process authenticates to NATS with (written by
    /// `saga nats credentials`).
    #[arg(long = "nats-nkey", env = "SAGA_NATS_NKEY", global = true)]
    pub nkey: Option<std::path::PathBuf>,
    /// Connect to NATS without authentication, to a server that asks for none. Anyone who can
    /// reach such a server can publish commands and forge replies.
    #[arg(long = "nats-no-auth", env = "SAGA_NATS_NO_AUTH", global = true)]
    pub no_auth: bool,
    /// CA certificate (PEM) the NATS server's certificate must be signed by; with it the
    /// process speaks TLS to NATS only (written by `saga nats credentials` as ca.pem).
    #[arg(long = "nats-ca", env = "SAGA_NATS_CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
}

impl NatsAuth {
    /// The credentials these settings name.
    pub fn credentials(
        &self,
    ) -> Result<saga_protocol::auth::Credentials, saga_protocol::auth::Error> {
        Ok(
            saga_protocol::auth::Credentials::from_settings(self.nkey.as_deref(), self.no_auth)?
                .with_ca(self.ca.clone()),
        )
    }
}

/// Settings every server shares.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// NATS server URL.
    #[arg(long, env = "SAGA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    #[command(flatten)]
    pub nats_auth: NatsAuth,
    /// Database URL: sqlite:<path> or postgres://user@host/db.
    #[arg(long, env = "SAGA_DATABASE_URL", hide_env_values = true)]
    pub database: String,
    /// What an acknowledged write survives: process (a crash of any process, kill -9) or
    /// power (a power loss too: SQLite syncs at every commit; PostgreSQL always does).
    #[arg(long, env = "SAGA_DURABILITY", default_value = "process")]
    pub durability: saga_sql::Durability,
    /// Copies of each JetStream stream (3 in a cluster).
    #[arg(long, env = "SAGA_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// How long work held by a process that died waits before another process takes it over
    /// (ack wait and pull expiry of the consumers; at least 1s).
    #[arg(long, env = "SAGA_FAILOVER_AFTER", default_value = "5s", value_parser = failover_after)]
    pub failover_after: std::time::Duration,
    /// Largest message (command or reply) this process decodes, in bytes; a larger one is
    /// dead-lettered with the reason. Keep it at least NATS's max_payload, or messages NATS
    /// carried are dead-lettered.
    #[arg(long, env = "SAGA_MAX_MESSAGE", default_value_t = saga_protocol::limits::DEFAULT_MAX_MESSAGE)]
    pub max_message: usize,
}

/// A failover bound: a duration of at least a second.
fn failover_after(value: &str) -> Result<std::time::Duration, String> {
    let bound = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if bound < saga_protocol::consumers::MIN_FAILOVER_AFTER {
        return Err(format!(
            "{value} is too short: JetStream needs at least 1s (e.g. 5s)"
        ));
    }
    Ok(bound)
}

#[derive(Debug, Args)]
pub struct OrchestratorArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub api: ServeApiArgs,
    /// Serve /metrics on this address, without authentication, instead of on the API.
    #[arg(long, env = "SAGA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of saga definitions.
    #[arg(long, env = "SAGA_SAGAS_DIR", default_value = "sagas")]
    pub sagas: PathBuf,
    /// Re-publish the in-flight commands of a saga quiet for this long (e.g. 30s).
    #[arg(long, env = "SAGA_REPUBLISH_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub republish_after: std::time::Duration,
    /// Flag a saga still running or compensating this long past its deadline (or past its
    /// start, without one) as overdue: in the API, the web UI and the saga_overdue gauge.
    #[arg(long, env = "SAGA_OVERDUE_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub overdue_after: std::time::Duration,
    /// How long an Idempotency-Key names its saga: the same key and input within it get that
    /// saga again (a different input, 409); after it, the key starts a new saga.
    #[arg(long, env = "SAGA_IDEMPOTENCY_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_window: std::time::Duration,
    /// A snapshot of a saga's state every this many events, so that a load folds only the
    /// events after it (0: none; the snapshots are a cache, the log decides).
    #[arg(long, env = "SAGA_SNAPSHOT_EVERY", default_value_t = saga_orchestrator::runtime::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Move a saga completed, compensated or aborted this long ago (and created longer ago
    /// than --idempotency-window) to the archive, where the API and `saga history` still read
    /// it; 0s: never. Running, compensating and stuck sagas are never moved.
    #[arg(long, env = "SAGA_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention: std::time::Duration,
    /// Sagas in flight kept in memory, so a reply needs no read of the store (0: none).
    #[arg(long, env = "SAGA_HOT_SAGAS", default_value_t = 1_000)]
    pub hot_sagas: usize,
    /// This replica's name in the partition leases (default: the host name and the API
    /// port, the same after a restart, so a restarted replica takes its leases back at once).
    #[arg(long, env = "SAGA_REPLICA_ID")]
    pub replica_id: Option<String>,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Args)]
pub struct ParticipantArgs {
    /// Which participant to run.
    #[arg(value_enum)]
    pub kind: ParticipantKind,
    #[command(flatten)]
    pub connection: Connection,
    /// Largest order amount approved without review (order participant).
    #[arg(long, env = "SAGA_REVIEW_LIMIT", default_value_t = 1_000_000)]
    pub review_limit: i64,
    /// Commands handled concurrently.
    #[arg(long, env = "SAGA_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// The participants catalogue this participant is checked against at start-up.
    #[arg(
        long,
        env = "SAGA_CATALOGUE",
        default_value = "sagas/participants.toml"
    )]
    pub catalogue: PathBuf,
    /// Address of the health and metrics endpoints (/livez, /readyz, /metrics); none when unset.
    #[arg(long, env = "SAGA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Dead-letter, instead of applying, a command sent longer ago than this that is not in
    /// the inbox; keep each inbox entry this long plus twice --max-clock-skew, then prune it
    /// (0s: keep every entry, refuse nothing). Above the longest a saga may wait for this
    /// participant.
    #[arg(long, env = "SAGA_INBOX_WINDOW", default_value = "30d", value_parser = humantime::parse_duration)]
    pub inbox_window: std::time::Duration,
    /// How far any clock of the system (the orchestrator's, each participant's) may be off.
    #[arg(long, env = "SAGA_MAX_CLOCK_SKEW", default_value = "5m", value_parser = humantime::parse_duration)]
    pub max_clock_skew: std::time::Duration,
    /// The account's statement periods last this long (at least 1s).
    #[arg(long, env = "SAGA_STATEMENT_PERIOD", default_value = "24h", value_parser = period_length)]
    pub statement_period: std::time::Duration,
    /// Periods start this long past midnight UTC (17h: days that end at 17:00).
    #[arg(long, env = "SAGA_STATEMENT_CUTOFF", default_value = "0s", value_parser = humantime::parse_duration)]
    pub statement_cutoff: std::time::Duration,
    /// A period closes this long after it ends: an entry that occurred in it and is booked
    /// later is booked in the open period, with a correction notice against the closed one.
    #[arg(long, env = "SAGA_STATEMENT_MAX_DELAY", default_value = "1h", value_parser = humantime::parse_duration)]
    pub statement_max_delay: std::time::Duration,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParticipantKind {
    Account,
    Order,
    Inventory,
}

/// A statement period's length: a duration of at least a second.
fn period_length(text: &str) -> Result<std::time::Duration, String> {
    let length = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if length < std::time::Duration::from_secs(1) {
        return Err(format!(
            "a statement period of {text} is too short: give at least 1s (24h is a day)"
        ));
    }
    Ok(length)
}
