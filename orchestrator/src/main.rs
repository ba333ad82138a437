//! `saga`: the one binary. Parses the command line, sets up logging, runs, exits.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = saga_orchestrator::cli::Cli::parse();
    // Servers log at info by default; `dev` prints its own summary and only logs warnings.
    let default = match cli.command {
        saga_orchestrator::cli::Command::Orchestrator(_)
        | saga_orchestrator::cli::Command::Participant(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    saga_orchestrator::cli::run(cli).await
}
