//! `saga retry|skip|abort|cancel <id>`: operator actions on a saga, through the HTTP API. Each is
//! recorded in the saga's history with who did it and why.

use super::{Error, OperatorArgs};
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
