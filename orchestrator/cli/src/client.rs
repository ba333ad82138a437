//! Client commands: talk to the orchestrator's HTTP API (`start`, `status`, `history`) or
//! to the account participant over NATS (`account`).

use super::{
    AccountAction, AccountArgs, DefinitionsAction, DefinitionsArgs, Error, ListArgs, Output,
    SagaRef, ServerArg, StartArgs, StatusArgs,
};
use serde_json::Value;
use std::process::ExitCode;
use std::time::{Duration, Instant};

impl super::AdminNats {
    /// Connects to NATS once (an operator's command does not wait for it) as the admin.
    pub(super) async fn connect(&self) -> Result<async_nats::Client, Error> {
        let credentials = self.nats_auth.credentials()?;
        let role = saga_protocol::auth::Role::Admin;
        Ok(
            saga_protocol::servers::connect_once(&self.nats, "saga-cli", &role, &credentials)
                .await?,
        )
    }
}

/// An HTTP client for the API at `server`, sending its token when there is one.
pub(super) fn http(server: &ServerArg) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = server
        .token
        .as_ref()
        .and_then(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).ok())
    {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
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
    let mut req = http(&args.server)
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
        let saga = call(
            http(&args.server).get(format!("{base}/v1/sagas/{id}")),
            base,
        )
        .await?;
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

pub async fn status(args: StatusArgs) -> Result<ExitCode, Error> {
    let path = match args.as_of_sequence {
        Some(n) => format!("/v1/sagas/{}?as_of_sequence={n}", args.id),
        None => format!("/v1/sagas/{}", args.id),
    };
    let mut saga = get(&args.server, &path).await?;
    print_saga(&saga, args.server.output);
    if !args.watch {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: poll, and print the saga again whenever its version moves.
    loop {
        let status = saga["status"].as_str().unwrap_or_default();
        if matches!(status, "completed" | "compensated" | "aborted") {
            return Ok(ExitCode::SUCCESS);
        }
        if status == "stuck" {
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let next = get(&args.server, &path).await?;
        if next["version"] != saga["version"] {
            if args.server.output == Output::Text {
                println!();
            }
            print_saga(&next, args.server.output);
        }
        saga = next;
    }
}

/// Query string of a search, every value percent-encoded.
fn search_query(args: &ListArgs) -> Result<String, Error> {
    let mut params: Vec<(String, String)> = vec![("limit".into(), args.limit.to_string())];
    if !args.status.is_empty() {
        params.push(("status".into(), args.status.join(",")));
    }
    let optional = [
        ("name", args.name.clone()),
        ("version", args.definition_version.map(|v| v.to_string())),
        ("from", args.from.clone()),
        ("until", args.until.clone()),
        ("cursor", args.cursor.clone()),
    ];
    params.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
    );
    if let Some(field) = &args.input {
        let (key, value) = field
            .split_once('=')
            .ok_or("--input must be FIELD=VALUE, e.g. customer_id=alice")?;
        params.push((format!("input.{key}"), value.to_string()));
    }
    let mut url = reqwest::Url::parse("http://x/")?;
    url.query_pairs_mut().extend_pairs(params);
    Ok(url.query().unwrap_or_default().to_string())
}

pub async fn list(args: ListArgs) -> Result<ExitCode, Error> {
    let page = get(&args.server, &format!("/v1/sagas?{}", search_query(&args)?)).await?;
    if args.server.output == Output::Json {
        println!("{page}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = super::table(["saga", "name", "version", "status", "created", "updated"]);
    for saga in page["sagas"].as_array().into_iter().flatten() {
        t.add_row([
            comfy_table::Cell::new(text(&saga["saga_id"])),
            comfy_table::Cell::new(text(&saga["name"])),
            comfy_table::Cell::new(saga["definition_version"].to_string()),
            super::style::status_cell(saga["status"].as_str().unwrap_or("-")),
            comfy_table::Cell::new(text(&saga["created_at"])),
            comfy_table::Cell::new(text(&saga["updated_at"])),
        ]);
    }
    super::print_table(&t);
    if let Some(cursor) = page["next_cursor"].as_str() {
        eprintln!("more: add --cursor {cursor}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn definitions(args: DefinitionsArgs) -> Result<ExitCode, Error> {
    if let Some(DefinitionsAction::Retire {
        name,
        version,
        server,
    }) = args.action
    {
        return retire(&server, &name, version).await;
    }
    let server = args.server;
    let defs = get(&server, "/v1/definitions").await?;
    if server.output == Output::Json {
        println!("{defs}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = super::table([
        "name",
        "version",
        "hash",
        "loaded",
        "in flight",
        "retired",
        "steps",
    ]);
    for d in defs.as_array().into_iter().flatten() {
        let steps: Vec<&str> = d["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let hash = text(&d["hash"]);
        t.add_row([
            text(&d["name"]),
            d["version"].to_string(),
            hash.get(..12).unwrap_or(&hash).to_string(),
            if d["loaded"] == true { "yes" } else { "no" }.to_string(),
            d["in_flight"].to_string(),
            text(&d["retired_at"]),
            steps.join(" → "),
        ]);
    }
    super::print_table(&t);
    Ok(ExitCode::SUCCESS)
}

/// `saga definitions retire NAME VERSION`.
async fn retire(server: &ServerArg, name: &str, version: u32) -> Result<ExitCode, Error> {
    let base = server.server.trim_end_matches('/');
    let url = format!("{base}/v1/definitions/{name}/{version}");
    let retired = call(http(server).delete(url), base).await?;
    match server.output {
        Output::Json => println!("{retired}"),
        Output::Text => println!(
            "retired {name} v{version} at {}: it can no longer be started",
            text(&retired["retired_at"])
        ),
    }
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
    call(http(server).get(format!("{base}{path}")), base).await
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
        super::style::status(&saga["status"].as_str().unwrap_or_default().to_uppercase()),
    );
    if let Some(reason) = saga["reason"].as_str() {
        println!("  reason: {reason}");
    }
    println!("  input:  {}", saga["input"]);
    if let Some(trace_id) = saga["trace_id"].as_str() {
        println!("  trace:  {trace_id}");
    }
    if let Some(archived_at) = saga["archived_at"].as_str() {
        println!("  archived at {archived_at}");
    }
    for step in saga["steps"].as_array().into_iter().flatten() {
        let status = step["status"].as_str().unwrap_or_default();
        let padding = " ".repeat(12usize.saturating_sub(status.len()));
        println!(
            "  {:<16} {}{padding} attempt {}  {}",
            step["name"].as_str().unwrap_or_default(),
            super::style::status(status),
            step["attempt"],
            step["reason"].as_str().unwrap_or_default(),
        );
    }
    if let Some(left) = saga["effects_left"].as_array() {
        let names: Vec<&str> = left.iter().filter_map(Value::as_str).collect();
        match names.as_slice() {
            [] => println!("  left applied: nothing"),
            names => println!("  left applied (see to them by hand): {}", names.join(", ")),
        }
    }
}

pub async fn account(args: AccountArgs) -> Result<ExitCode, Error> {
    let client = args.admin.connect().await?;
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
        AccountAction::Statement {
            customer_id,
            by,
            from,
            to,
            output,
        } => {
            let statement = admin::statement(&client, &customer_id, by, from, to).await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&statement)?),
                Output::Text => print_statement(&statement),
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    super::print_table(&balance_table(&balances));
    Ok(ExitCode::SUCCESS)
}

/// A passbook as text: its span, the opening balance, one row per entry with the balance
/// after it, the closing balance, then each correction notice.
fn print_statement(s: &saga_participants::account::passbook::Statement) {
    println!("{}", statement_text(s));
}

fn statement_text(s: &saga_participants::account::passbook::Statement) -> String {
    let span = |t: Option<saga_protocol::Timestamp>, open: &str| {
        t.map_or_else(|| open.to_string(), |t| t.to_string())
    };
    let mut t = super::table([
        "seq",
        "occurred",
        "booked",
        "entry",
        "reference",
        "available",
        "reserved",
        "note",
    ]);
    for line in &s.lines {
        let e = &line.entry;
        let note = if line.late {
            format!("late: booked in {}", e.booked_in)
        } else {
            String::new()
        };
        t.add_row([
            e.sequence.to_string(),
            e.occurred_at.to_string(),
            e.booked_at.to_string(),
            format!("{} {}", e.kind, e.amount),
            e.reference.clone(),
            line.balance.available.to_string(),
            line.balance.reserved.to_string(),
            note,
        ]);
    }
    let mut text = format!(
        "account {}  by {}  from {} to {}\n  opening  {}\n{}\n  closing  {}",
        s.account_id,
        s.by,
        span(s.from, "the start"),
        span(s.to, "now"),
        s.opening,
        t.trim_fmt(),
        s.closing
    );
    for notice in &s.corrections {
        text.push_str(&format!("\n  correction: {}", notice.detail));
    }
    text
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use saga_participants::account::events::AccountEvent;
    use saga_participants::account::passbook::{self, Clock, Periods};
    use saga_protocol::Timestamp;

    /// 2026-12-01T00:00:00Z plus `hours`.
    fn at(hours: f64) -> Timestamp {
        Timestamp(1_796_083_200_000 + (hours * 3_600_000.0) as i64)
    }

    #[test]
    fn a_statement_prints_its_entries_balances_and_notices() {
        let reserve = |amount, key: &str, sent| AccountEvent::CreditReserved {
            amount,
            effect_key: key.into(),
            requested_at: sent,
        };
        let log = [
            (
                1,
                AccountEvent::AccountOpened {
                    account_id: "ada".into(),
                },
                at(9.0),
            ),
            (
                2,
                AccountEvent::FundsDeposited {
                    amount: 1000,
                    operation_id: "open".into(),
                },
                at(9.0),
            ),
            (3, reserve(300, "s1.reserve_credit", at(10.0)), at(10.001)),
            (4, reserve(100, "s3.reserve_credit", at(23.5)), at(26.0)),
        ];
        let periods = Periods::default();
        let entries = passbook::entries(&log, &periods);
        let statement = passbook::statement(
            "ada",
            &entries,
            &periods,
            Clock::Occurred,
            Some(at(0.0)),
            Some(at(24.0)),
        );
        insta::assert_snapshot!(super::statement_text(&statement));
    }
}
