//! The `saga` command line: servers (`dev`, `orchestrator`, `participant`) and clients
//! (`start`, `status`, `history`, `account`), and `bench`.
//!
//! Every server setting has a flag and an environment variable (`SAGA_NATS_URL`,
//! `SAGA_DATABASE_URL`, …); clients find the API with `--server` or `SAGA_SERVER`. Servers
//! also take the telemetry settings ([`TelemetryArgs`]), whose variables are the standard
//! OpenTelemetry ones (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …).

mod api_token;
mod client;
mod client_args;
mod conformance;
mod dev;
mod dlq;
mod inventory;
mod nats;
mod operator;
mod projections;
mod server_args;
mod servers;
mod simulate;
mod style;
mod validate;

pub use client_args::*;
pub use server_args::*;

use clap::{Parser, Subcommand};
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
    /// Stop a stuck saga for good, leaving what it did as it is (its status lists what is left).
    Abort(OperatorArgs),
    /// Undo a running saga before its pivot: what it did is compensated, in reverse order.
    Cancel(OperatorArgs),
    /// Send a signal to a saga's await step (an approval, a callback), with its payload.
    Signal(SignalArgs),
    /// Inspect and replay dead letters.
    Dlq(DlqArgs),
    /// Check read models against the fold of their logs (`verify`), or rebuild one from it.
    Projections(ProjectionsArgs),
    /// Check saga definitions (files or directories) before deploying them.
    Validate(ValidateArgs),
    /// Run definitions against model participants under injected faults, checking the
    /// guarantees; prints the smallest failing schedule, replayable.
    Simulate(SimulateArgs),
    /// Check a running participant (any language) against the participant contract, over
    /// NATS only.
    Conformance(ConformanceArgs),
    /// Open, fund and inspect accounts of the account participant.
    Account(AccountArgs),
    /// Add and inspect the shows of the inventory participant.
    Inventory(InventoryArgs),
    /// Measure throughput, latency, CPU and memory against the raw JetStream floor.
    Bench(BenchCommand),
    /// NATS credentials and permissions for every identity of the system.
    Nats(NatsArgs),
    /// Callers of the HTTP API: named tokens with roles.
    Api(ApiArgs),
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
                    ParticipantKind::Inventory => "saga-inventory",
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
        Command::Cancel(args) => operator::run("cancel", args).await,
        Command::Signal(args) => operator::signal(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Projections(args) => projections::run(args).await,
        Command::Validate(args) => validate::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Conformance(args) => conformance::run(args).await,
        Command::Account(args) => client::account(args).await,
        Command::Inventory(args) => inventory::run(args).await,
        Command::Nats(args) => nats::run(args),
        Command::Api(args) => api_token::run(args),
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
