//! `saga`: the one binary. Parses the command line, sets up telemetry (logs, traces,
//! metrics), runs, flushes the telemetry, exits.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = saga_cli::Cli::parse();
    let telemetry = match saga_telemetry::install(&cli.telemetry()) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = saga_cli::run(cli).await;
    telemetry.shutdown().await;
    code
}
