//! The `saga` command line: servers (`dev`, `orchestrator`, `participant`) and clients
//! (`start`, `status`, `history`, `account`), and `bench`.
//!
//! Every server setting has a flag and an environment variable (`SAGA_NATS_URL`,
//! `SAGA_DATABASE_URL`, …); clients find the API with `--server` or `SAGA_SERVER`. Servers
//! also take the telemetry settings ([`TelemetryArgs`]), whose variables are the standard
//! OpenTelemetry ones (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …).

mod client;
mod dev;
mod dlq;
mod operator;
mod servers;
mod style;
mod validate;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs multi-service transactions as sagas: event-sourced, over NATS JetStream, with
/// compensation instead of two-phase commit.
#[derive(Debug, Parser)]
#[command(name = "saga", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything locally: nats-server, orchestrator, participants, demo sagas.
    Dev(DevArgs),
    /// Run the orchestrator and its HTTP API.
    Orchestrator(OrchestratorArgs),
    /// Run a participant service.
    Participant(ParticipantArgs),
    /// Start a saga.
    Start(StartArgs),
    /// Show a saga's status and steps (--watch follows it live).
    Status(StatusArgs),
    /// List and search sagas, newest first.
    List(ListArgs),
    /// List the stored saga definition versions (hash, loaded, sagas in flight), or retire one.
    Definitions(DefinitionsArgs),
    /// Show a saga's event log.
    History(SagaRef),
    /// Send the command a stuck saga is stuck on again.
    Retry(OperatorArgs),
    /// Mark the command a stuck saga is stuck on as resolved by hand, and go on.
    Skip(OperatorArgs),
    /// Stop a saga for good.
    Abort(OperatorArgs),
    /// Inspect and replay dead letters.
    Dlq(DlqArgs),
    /// Check saga definitions (files or directories) before deploying them.
    Validate(ValidateArgs),
    /// Open, fund and inspect accounts of the account participant.
    Account(AccountArgs),
    /// Measure throughput, latency, CPU and memory against the raw JetStream floor.
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Saga id.
    pub id: String,
    /// Why: recorded in the saga's history.
    #[arg(long)]
    pub reason: String,
    /// Who: recorded in the saga's history.
    #[arg(long, env = "USER", default_value = "operator")]
    pub by: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct DefinitionsArgs {
    #[command(subcommand)]
    pub action: Option<DefinitionsAction>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Subcommand)]
pub enum DefinitionsAction {
    /// Retire a version with no saga in flight: it can no longer be started, and the
    /// history of its sagas stays readable.
    Retire {
        /// Saga definition name, e.g. place_order.
        name: String,
        /// The version to retire.
        #[arg(id = "definition_version", value_name = "VERSION")]
        version: u32,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Definition files, or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The participants catalogue (default: participants.toml beside the definitions).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// `text` for people, `json` for tools.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub format: Output,
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
    /// NATS server URL.
    #[arg(
        long,
        global = true,
        env = "SAGA_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead letters with why and where they came from.
    List {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Publish a dead letter to its original subject again and remove it.
    Replay { sequence: u64 },
}

/// Where the orchestrator's API is.
#[derive(Debug, Clone, Args)]
pub struct ServerArg {
    /// Base URL of the orchestrator's HTTP API.
    #[arg(long, env = "SAGA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the API, when it requires one.
    #[arg(long, env = "SAGA_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct BenchCommand {
    #[command(flatten)]
    pub bench: saga_bench::BenchArgs,
    /// `text`: progress, a summary table, then the JSON line; `json`: only the JSON line.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory for the SQLite files and the NATS store.
    #[arg(long, env = "SAGA_DATA_DIR", default_value = ".saga")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "SAGA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer token the API requires on /v1 (required with a non-loopback --listen).
    #[arg(long, env = "SAGA_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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

/// Settings every server shares.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// NATS server URL.
    #[arg(long, env = "SAGA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Database URL: sqlite:<path> or postgres://user@host/db.
    #[arg(long, env = "SAGA_DATABASE_URL")]
    pub database: String,
    /// Copies of each JetStream stream (3 in a cluster).
    #[arg(long, env = "SAGA_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// How long work held by a process that died waits before another process takes it over
    /// (ack wait and pull expiry of the consumers; at least 1s).
    #[arg(long, env = "SAGA_FAILOVER_AFTER", default_value = "5s", value_parser = failover_after)]
    pub failover_after: std::time::Duration,
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
    /// Address of the HTTP API.
    #[arg(long, env = "SAGA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer token the API requires on /v1 (required with a non-loopback --listen).
    #[arg(long, env = "SAGA_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParticipantKind {
    Account,
    Order,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Saga definition name, e.g. place_order.
    pub saga: String,
    /// Saga input as a JSON object.
    #[arg(long)]
    pub input: String,
    /// Same key, same saga: a retried start does not start a second one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Definition version to run (default: the newest loaded).
    #[arg(long)]
    pub definition_version: Option<u32>,
    /// Wait until the saga is completed, compensated or stuck, then print it.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 30s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Saga id.
    pub id: String,
    /// Follow the saga: print each change until it is completed, compensated, stuck or aborted.
    #[arg(long)]
    pub watch: bool,
    /// Show the saga as it was after this event (time travel).
    #[arg(long, conflicts_with = "watch")]
    pub as_of_sequence: Option<u64>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses (repeat or separate by commas): running, compensating, completed,
    /// compensated, stuck, aborted.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only sagas of this definition.
    #[arg(long)]
    pub name: Option<String>,
    /// Only this definition version.
    #[arg(long)]
    pub definition_version: Option<u32>,
    /// Only sagas whose input has this top-level field value, e.g. customer_id=alice.
    #[arg(long, value_name = "FIELD=VALUE")]
    pub input: Option<String>,
    /// Created at or after (RFC 3339, e.g. 2026-11-23T18:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Created before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after the previous page (its `next` cursor).
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct SagaRef {
    /// Saga id.
    pub id: String,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub action: AccountAction,
    /// NATS server URL (accounts are managed through the account participant).
    #[arg(
        long,
        global = true,
        env = "SAGA_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats: String,
}

#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Open an account (idempotent), optionally with a first deposit.
    Open {
        customer_id: String,
        #[arg(long, default_value_t = 0)]
        deposit: i64,
    },
    /// Deposit into an account; the operation id makes a retried deposit apply once.
    Deposit {
        customer_id: String,
        amount: i64,
        #[arg(long)]
        operation_id: Option<String>,
    },
    /// Show an account's balance, or every account's without an id.
    Balance { customer_id: Option<String> },
}

impl Cli {
    /// The telemetry this command runs with: servers log at `info` (and export when told
    /// to); `dev` prints its own summary and logs warnings only; clients log warnings only.
    pub fn telemetry(&self) -> saga_telemetry::Settings {
        match &self.command {
            Command::Orchestrator(a) => a.telemetry.settings("saga-orchestrator", "info"),
            Command::Participant(a) => {
                let service = match a.kind {
                    ParticipantKind::Account => "saga-account",
                    ParticipantKind::Order => "saga-order",
                };
                a.telemetry.settings(service, "info")
            }
            Command::Dev(a) => a.telemetry.settings("saga", "warn"),
            _ => saga_telemetry::Settings {
                default_log_filter: "warn".into(),
                ..saga_telemetry::Settings::new("saga-cli")
            },
        }
    }
}

/// Runs the parsed command line; the exit code says whether it worked.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Orchestrator(args) => servers::orchestrator(args).await,
        Command::Participant(args) => servers::participant(args).await,
        Command::Start(args) => client::start(args).await,
        Command::Status(args) => client::status(args).await,
        Command::List(args) => client::list(args).await,
        Command::Definitions(args) => client::definitions(args).await,
        Command::History(args) => client::history(args).await,
        Command::Retry(args) => operator::run("retry", args).await,
        Command::Skip(args) => operator::run("skip", args).await,
        Command::Abort(args) => operator::run("abort", args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Validate(args) => validate::run(args),
        Command::Account(args) => client::account(args).await,
        Command::Bench(args) => {
            let mut bench = args.bench;
            bench.json_only = args.output == Output::Json;
            saga_bench::run(bench).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A table for the terminal, without borders, headed by `header`.
pub(crate) fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header);
    t
}

/// Prints a table without the padding that would trail each line.
pub(crate) fn print_table(table: &comfy_table::Table) {
    println!("{}", table.trim_fmt());
}

/// A command-line failure, printed as `error: …`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks names only when a command is parsed: every subcommand, here, at once.
        Cli::command().debug_assert();
    }

    #[test]
    fn definitions_lists_or_retires() {
        let cli = Cli::try_parse_from(["saga", "definitions", "--output", "json"]).unwrap();
        let Command::Definitions(args) = cli.command else {
            panic!("{cli:?}");
        };
        assert!(args.action.is_none());
        assert_eq!(args.server.output, Output::Json);
        let cli =
            Cli::try_parse_from(["saga", "definitions", "retire", "place_order", "1"]).unwrap();
        let Command::Definitions(DefinitionsArgs {
            action: Some(DefinitionsAction::Retire { name, version, .. }),
            ..
        }) = cli.command
        else {
            panic!("{cli:?}");
        };
        assert_eq!((name.as_str(), version), ("place_order", 1));
    }
}
