//! `saga retry|skip|abort|cancel <id>`: operator actions on a saga, through the HTTP API, each
//! recorded in the saga's history with who did it and why; and `saga signal <id> <name>`.

use super::{Error, OperatorArgs, Output, SignalArgs};
use std::process::ExitCode;

pub async fn run(action: &str, args: OperatorArgs) -> Result<ExitCode, Error> {
    let base = args.server.server.trim_end_matches('/');
    let body = serde_json::json!({ "by": args.by, "reason": args.reason });
    let req = super::client::http(&args.server)
        .post(format!("{base}/v1/sagas/{}/{action}", args.id))
        .json(&body);
    let saga = super::client::call(req, base).await?;
    super::client::print_saga(&saga, args.server.output);
    Ok(ExitCode::SUCCESS)
}

/// `saga signal <id> <name> --payload JSON`: the await step waiting for it goes on; a signal
/// that came twice or late is recorded and ignored, and said so.
pub async fn signal(args: SignalArgs) -> Result<ExitCode, Error> {
    let base = args.server.server.trim_end_matches('/');
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).map_err(|e| format!("--payload is not JSON: {e}"))?;
    let req = super::client::http(&args.server)
        .post(format!("{base}/v1/sagas/{}/signals/{}", args.id, args.name))
        .json(&payload);
    let answer = super::client::call(req, base).await?;
    if args.server.output == Output::Json {
        println!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    match answer["ignored"].as_str() {
        Some(why) => println!("signal {} recorded and ignored: {why}", args.name),
        None => println!("signal {} taken", args.name),
    }
    super::client::print_saga(&answer["saga"], args.server.output);
    Ok(ExitCode::SUCCESS)
}
