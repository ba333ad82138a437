//! Client commands: talk to the orchestrator's HTTP API (`start`, `status`, `history`) or
//! to the account participant over NATS (`account`).

use super::{AccountAction, AccountArgs, Error, Output, SagaRef, ServerArg, StartArgs};
use serde_json::Value;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(super) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// Sends a request and returns the JSON body, or the API's problem detail as the error.
pub(super) async fn call(req: reqwest::RequestBuilder, server: &str) -> Result<Value, Error> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the orchestrator at {server}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    Err(format!("{status}: {detail}").into())
}

pub async fn start(args: StartArgs) -> Result<ExitCode, Error> {
    let input: Value =
        serde_json::from_str(&args.input).map_err(|e| format!("--input is not valid JSON: {e}"))?;
    let base = args.server.server.trim_end_matches('/');
    let mut req = http()
        .post(format!("{base}/v1/sagas/{}", args.saga))
        .json(&input);
    if let Some(key) = &args.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    let started = call(req, base).await?;
    let id = started["saga_id"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        match args.server.output {
            Output::Json => println!("{started}"),
            Output::Text => println!("{id}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + args.timeout;
    loop {
        let saga = call(http().get(format!("{base}/v1/sagas/{id}")), base).await?;
        let status = saga["status"].as_str().unwrap_or_default();
        if matches!(status, "completed" | "compensated" | "stuck") {
            print_saga(&saga, args.server.output);
            return Ok(if status == "stuck" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        if Instant::now() > deadline {
            print_saga(&saga, args.server.output);
            return Err(format!("saga {id} is still {status} after {:?}", args.timeout).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn status(args: SagaRef) -> Result<ExitCode, Error> {
    let saga = get(&args.server, &format!("/v1/sagas/{}", args.id)).await?;
    print_saga(&saga, args.server.output);
    Ok(ExitCode::SUCCESS)
}

pub async fn history(args: SagaRef) -> Result<ExitCode, Error> {
    let events = get(&args.server, &format!("/v1/sagas/{}/events", args.id)).await?;
    if args.server.output == Output::Json {
        println!("{events}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = super::table([
        "seq", "event", "step", "command", "occurred", "recorded", "reason",
    ]);
    for e in events.as_array().into_iter().flatten() {
        let data = &e["data"];
        t.add_row([
            e["sequence"].to_string(),
            text(&e["type"]),
            text(&data["step"]),
            text(&data["command"]),
            text(&e["occurred_at"]),
            text(&e["recorded_at"]),
            text(&data["reason"]),
        ]);
    }
    super::print_table(&t);
    Ok(ExitCode::SUCCESS)
}

/// A JSON string as plain text, `-` when absent.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

async fn get(server: &ServerArg, path: &str) -> Result<Value, Error> {
    let base = server.server.trim_end_matches('/');
    call(http().get(format!("{base}{path}")), base).await
}

pub(super) fn print_saga(saga: &Value, output: Output) {
    if output == Output::Json {
        println!("{saga}");
        return;
    }
    println!(
        "saga {}  {} v{}  {}",
        saga["saga_id"].as_str().unwrap_or_default(),
        saga["name"].as_str().unwrap_or_default(),
        saga["definition_version"],
        saga["status"].as_str().unwrap_or_default().to_uppercase(),
    );
    if let Some(reason) = saga["reason"].as_str() {
        println!("  reason: {reason}");
    }
    println!("  input:  {}", saga["input"]);
    if let Some(trace_id) = saga["trace_id"].as_str() {
        println!("  trace:  {trace_id}");
    }
    for step in saga["steps"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<12} attempt {}  {}",
            step["name"].as_str().unwrap_or_default(),
            step["status"].as_str().unwrap_or_default(),
            step["attempt"],
            step["reason"].as_str().unwrap_or_default(),
        );
    }
}

pub async fn account(args: AccountArgs) -> Result<ExitCode, Error> {
    let client = async_nats::connect(&args.nats)
        .await
        .map_err(|e| format!("cannot connect to NATS at {}: {e}", args.nats))?;
    use saga_participants::admin;
    let balances = match args.action {
        AccountAction::Open {
            customer_id,
            deposit,
        } => {
            vec![admin::open_account(&client, &customer_id, deposit).await?]
        }
        AccountAction::Deposit {
            customer_id,
            amount,
            operation_id,
        } => {
            let op = operation_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            vec![admin::deposit(&client, &customer_id, amount, &op).await?]
        }
        AccountAction::Balance {
            customer_id: Some(id),
        } => vec![admin::balance(&client, &id).await?],
        AccountAction::Balance { customer_id: None } => admin::balances(&client).await?,
    };
    super::print_table(&balance_table(&balances));
    Ok(ExitCode::SUCCESS)
}

/// Balances as a table: customer, available, reserved, deposited.
pub(crate) fn balance_table(balances: &[saga_participants::admin::Balance]) -> comfy_table::Table {
    let mut t = super::table(["customer", "available", "reserved", "deposited"]);
    for b in balances {
        t.add_row([
            b.customer_id.clone(),
            b.available.to_string(),
            b.reserved.to_string(),
            b.deposited.to_string(),
        ]);
    }
    t
}
