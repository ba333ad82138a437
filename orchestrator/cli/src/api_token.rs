//! `saga api token`: a bearer token for a named caller of the API, with a role. The token is
//! printed once; the tokens file keeps only its SHA-256 (see `saga_orchestrator::api::Tokens`).

use super::{ApiAction, ApiArgs, Error};
use std::process::ExitCode;

pub fn run(args: ApiArgs) -> Result<ExitCode, Error> {
    match args.action {
        ApiAction::Token {
            name,
            role,
            tokens,
            replace,
        } => {
            let token = new_token()?;
            saga_orchestrator::api::write_token_entry(&tokens, &name, role, &token, replace)?;
            println!("{token}");
            eprintln!(
                "{name} ({role}) written to {}; send SIGHUP to a running orchestrator to take it",
                tokens.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 256 bits from the operating system's generator, as `saga_` and 64 hex digits (the prefix
/// lets secret scanners recognise a leaked token).
fn new_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
    Ok(format!(
        "saga_{}",
        saga_orchestrator::api::hex_digits(&bytes)
    ))
}
