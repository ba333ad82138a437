//! `saga conformance --participant <name>`: checks a running participant, written in any
//! language, against the participant contract, over NATS only, the way the orchestrator
//! drives it. It reads the participant's commands from the catalogue, sends each as the
//! orchestrator would (payloads made up from the declared input, or given with `--payload`),
//! and checks:
//!
//! - `duplicate`: a copy of a command gets the recorded reply, and a retry (attempt 2, the
//!   same effect key) of an applied one finds its effect;
//! - `envelope`: the reply carries the command's ids, the schema version, and its trace
//!   context (`traceparent`, the same trace);
//! - `compensation-first`: a compensation of a command never seen succeeds, and the late
//!   command is then refused (the tombstone);
//! - `compensation-twice`: a copy of a compensation gets the recorded reply and a retry of it
//!   changes nothing;
//! - `malformed`: bytes that are no envelope are dead-lettered with a reason, and the next
//!   command is answered;
//! - `unknown-command`: a command the participant does not offer is dead-lettered, naming it,
//!   not answered.
//!
//! It prints a table of the checks and exits 1 if any failed. Run it against a test system
//! (`saga dev`, or a nats-server of your own): it sends real commands.

mod checks;
mod probe;

use super::{ConformanceArgs, Error, Output};
use saga_core::Catalogue;
use saga_core::simulate::sample;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;

pub async fn run(args: ConformanceArgs) -> Result<ExitCode, Error> {
    let catalogue = Catalogue::from_file(&args.catalogue).map_err(|e| {
        let src = std::fs::read_to_string(&args.catalogue).unwrap_or_default();
        saga_core::definition::render(&e, &src)
    })?;
    let plan = plan(&catalogue, &args.participant, &args.payloads)?;
    let credentials = args.nats_auth.credentials()?;
    let role = saga_protocol::auth::Role::Conformance;
    let client =
        saga_protocol::servers::connect_once(&args.nats, "saga-conformance", &role, &credentials)
            .await?;
    let mut probe = probe::Probe::open(client, &args.participant, args.timeout).await?;
    let verdicts = checks::run(&mut probe, &plan).await;
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let out = &mut std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::json!({ "participant": args.participant, "passed": failed == 0, "checks": verdicts })
        )?,
        Output::Text => {
            let mut table = crate::table(["check", "command", "result", "detail"]);
            for v in &verdicts {
                let result = if v.passed { "pass" } else { "FAIL" };
                table.add_row([v.check, v.command.as_str(), result, v.detail.as_str()]);
            }
            writeln!(out, "{}", table.trim_fmt())?;
            writeln!(
                out,
                "{}: {} of {} checks passed",
                args.participant,
                verdicts.len() - failed,
                verdicts.len()
            )?;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The participant's forward commands from the catalogue, each with its payload and the
/// compensation that undoes it (with the command's payload, merged with its own).
fn plan(
    catalogue: &Catalogue,
    participant: &str,
    given: &[(String, Value)],
) -> Result<checks::Plan, Error> {
    let commands = catalogue.participants.get(participant).ok_or_else(|| {
        let known: Vec<&str> = catalogue.participants.keys().map(String::as_str).collect();
        format!(
            "the catalogue lists no participant `{participant}` (it lists: {})",
            known.join(", ")
        )
    })?;
    for (name, _) in given {
        if !commands.contains_key(name) {
            return Err(format!(
                "--payload names {participant}.{name}, which the catalogue does not list"
            )
            .into());
        }
    }
    let payload = |name: &str| -> Value {
        given
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                let spec = commands.get(name)?;
                Some(sample::object(
                    &spec.input,
                    &Value::Null,
                    &format!("conformance.{name}"),
                    false,
                ))
            })
            .unwrap_or(Value::Object(Default::default()))
    };
    let forward = catalogue
        .pairs(participant)
        .into_iter()
        .map(|(command, undo)| {
            let forward_payload = payload(command);
            let undo = undo.map(|undo| {
                let mut merged = forward_payload.as_object().cloned().unwrap_or_default();
                if let Value::Object(own) = payload(undo) {
                    merged.extend(own);
                }
                (undo.to_string(), Value::Object(merged))
            });
            checks::Forward {
                command: command.to_string(),
                payload: forward_payload,
                undo,
            }
        })
        .collect::<Vec<_>>();
    if forward.is_empty() {
        return Err(format!("the catalogue lists no forward command of `{participant}`").into());
    }
    Ok(checks::Plan { forward })
}

/// `Command=JSON`, for `--payload`.
pub fn parse_payload(text: &str) -> Result<(String, Value), String> {
    let (name, json) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not Command=JSON, e.g. ReserveCredit={{\"customer_id\":\"c-1\",\"amount\":5}}"))?;
    let value: Value = serde_json::from_str(json)
        .map_err(|e| format!("the payload of {name} is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("the payload of {name} must be a JSON object"));
    }
    Ok((name.trim().to_string(), value))
}
