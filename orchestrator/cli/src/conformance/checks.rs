//! The checks: each drives the participant over NATS alone, as the orchestrator would, and
//! says what it saw when the participant breaks the contract.

use super::probe::{self, Heard, Probe};
use saga_protocol::{MessageId, Outcome, SCHEMA_VERSION};
use serde_json::Value;
use uuid::Uuid;

/// One check's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Verdict {
    pub check: &'static str,
    pub command: String,
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    fn of(check: &'static str, command: &str, result: Result<String, String>) -> Self {
        let (passed, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        Verdict {
            check,
            command: command.to_string(),
            passed,
            detail,
        }
    }
}

/// A forward command the checks send, with its payload, and the compensation that undoes it
/// with that compensation's payload.
pub(crate) struct Forward {
    pub command: String,
    pub payload: Value,
    pub undo: Option<(String, Value)>,
}

/// What the checks send: the participant's forward commands.
pub(crate) struct Plan {
    pub forward: Vec<Forward>,
}

pub(crate) async fn run(probe: &mut Probe, plan: &Plan) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for Forward {
        command,
        payload,
        undo,
    } in &plan.forward
    {
        let (duplicate, envelope) = duplicate_and_envelope(probe, command, payload).await;
        verdicts.push(Verdict::of("duplicate", command, duplicate));
        verdicts.push(Verdict::of("envelope", command, envelope));
        if let Some((undo, undo_payload)) = undo {
            let first = compensation_first(probe, command, payload, undo, undo_payload).await;
            verdicts.push(Verdict::of("compensation-first", undo, first));
            let twice = compensation_twice(probe, command, payload, undo, undo_payload).await;
            verdicts.push(Verdict::of("compensation-twice", undo, twice));
        }
    }
    if let Some(Forward {
        command, payload, ..
    }) = plan.forward.first()
    {
        let malformed = malformed(probe, command, payload).await;
        verdicts.push(Verdict::of("malformed", command, malformed));
        let unknown = unknown_command(probe).await;
        verdicts.push(Verdict::of("unknown-command", "NoSuchCommand", unknown));
    }
    verdicts
}

/// A copy of a command gets the recorded reply; a retry (new attempt, new id, the same effect
/// key) of an applied command shares its effect. And the first reply's envelope.
async fn duplicate_and_envelope(
    probe: &mut Probe,
    command: &str,
    payload: &Value,
) -> (Result<String, String>, Result<String, String>) {
    let saga = Uuid::now_v7();
    let first = probe.forward(saga, 1, command, payload.clone());
    let trace = probe::traceparent();
    let heard = match send_and_hear(probe, &first, Some(&trace)).await {
        Ok(heard) => heard,
        Err(e) => return (Err(e.clone()), Err(e)),
    };
    let envelope = check_envelope(probe, &first, &heard, &trace);
    let duplicate = async {
        let again = send_and_hear(probe, &first, None).await?;
        if again.reply != heard.reply {
            return Err(format!(
                "a copy of the command was answered anew, not with the recorded reply: first {}, then {}",
                show(&heard.reply.outcome),
                show(&again.reply.outcome)
            ));
        }
        let retry = probe.forward(saga, 2, command, payload.clone());
        let retried = send_and_hear(probe, &retry, None).await?;
        match (&heard.reply.outcome, &retried.reply.outcome) {
            (Outcome::Succeeded { output }, Outcome::Succeeded { output: again }) if output == again => Ok(
                "a copy got the recorded reply; a retry under the same effect key found the effect".into(),
            ),
            (Outcome::Succeeded { .. }, other) => Err(format!(
                "a retry (attempt 2, the same effect key) of an applied command was answered {}: it should find the effect and answer the same output",
                show(other)
            )),
            (first, _) => Ok(format!(
                "a copy got the recorded reply ({}; give --payload {command}=… for one that applies, to check retries too)",
                show(first)
            )),
        }
    }
    .await;
    (duplicate, envelope)
}

fn check_envelope(
    probe: &Probe,
    command: &saga_protocol::CommandEnvelope,
    heard: &Heard,
    trace: &str,
) -> Result<String, String> {
    let reply = &heard.reply;
    let mut wrong = Vec::new();
    if reply.schema_version != SCHEMA_VERSION {
        wrong.push(format!(
            "schema_version {} (expected {SCHEMA_VERSION})",
            reply.schema_version
        ));
    }
    let reply_id = MessageId::reply_to(&command.message_id);
    if reply.message_id != reply_id {
        wrong.push(format!(
            "message_id {} (expected {reply_id})",
            reply.message_id
        ));
    }
    if reply.saga_id != command.saga_id
        || reply.step != command.step
        || reply.attempt != command.attempt
        || reply.kind != command.kind
    {
        wrong.push("saga_id, step, attempt or kind differ from the command's".into());
    }
    if reply.participant != probe.participant {
        wrong.push(format!(
            "participant `{}` (expected `{}`)",
            reply.participant, probe.participant
        ));
    }
    match heard.traceparent.as_deref() {
        None => wrong.push("no traceparent header: the reply is not in the command's trace (is the participant tracing?)".into()),
        Some(t) if probe::trace_id(t) != probe::trace_id(trace) => {
            wrong.push(format!("traceparent {t} is not in the command's trace {trace}"))
        }
        Some(_) => {}
    }
    if wrong.is_empty() {
        Ok("ids, schema version and trace context as sent".into())
    } else {
        Err(wrong.join("; "))
    }
}

/// A compensation of a command never seen succeeds and leaves a tombstone: the late command
/// is refused.
async fn compensation_first(
    probe: &mut Probe,
    command: &str,
    payload: &Value,
    undo: &str,
    undo_payload: &Value,
) -> Result<String, String> {
    let saga = Uuid::now_v7();
    let compensation = probe.compensation(saga, 1, undo, undo_payload.clone());
    let undone = send_and_hear(probe, &compensation, None).await?;
    if !matches!(undone.reply.outcome, Outcome::Succeeded { .. }) {
        return Err(format!(
            "a compensation of a command never seen was answered {}: it should succeed and leave a tombstone",
            show(&undone.reply.outcome)
        ));
    }
    let late = probe.forward(saga, 1, command, payload.clone());
    let refused = send_and_hear(probe, &late, None).await?;
    match &refused.reply.outcome {
        Outcome::Rejected { reason } => Ok(format!("the late {command} was refused: {reason}")),
        other => Err(format!(
            "the {command} that came after its compensation was answered {}: the tombstone should refuse it",
            show(other)
        )),
    }
}

/// A compensation applied twice (a copy, then a retry) changes nothing the first did not.
async fn compensation_twice(
    probe: &mut Probe,
    command: &str,
    payload: &Value,
    undo: &str,
    undo_payload: &Value,
) -> Result<String, String> {
    let saga = Uuid::now_v7();
    let forward = probe.forward(saga, 1, command, payload.clone());
    send_and_hear(probe, &forward, None).await?;
    let compensation = probe.compensation(saga, 1, undo, undo_payload.clone());
    let first = send_and_hear(probe, &compensation, None).await?;
    let Outcome::Succeeded { output } = &first.reply.outcome else {
        return Err(format!(
            "the compensation was answered {}",
            show(&first.reply.outcome)
        ));
    };
    let copy = send_and_hear(probe, &compensation, None).await?;
    if copy.reply != first.reply {
        return Err(format!(
            "a copy of the compensation was answered anew: first {}, then {}",
            show(&first.reply.outcome),
            show(&copy.reply.outcome)
        ));
    }
    let retry = probe.compensation(saga, 2, undo, undo_payload.clone());
    let again = send_and_hear(probe, &retry, None).await?;
    match &again.reply.outcome {
        Outcome::Succeeded { output: second } if second == output => Ok(
            "a copy got the recorded reply; a retry found the effect undone and answered the same"
                .into(),
        ),
        other => Err(format!(
            "a retry of the compensation (attempt 2) was answered {}, after the first answered {}: undoing twice must change nothing",
            show(other),
            show(&first.reply.outcome)
        )),
    }
}

/// Bytes that are no envelope are dead-lettered with a reason, and the next command is handled.
async fn malformed(probe: &mut Probe, command: &str, payload: &Value) -> Result<String, String> {
    let marker = format!("{{\"conformance\": \"not an envelope {}\"", Uuid::new_v4()).into_bytes();
    probe.send_raw(command, marker.clone()).await?;
    let letter = probe.dead_letter(&marker).await?;
    let reason = letter
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or("dead-lettered without a reason (header Saga-Dlq-Reason)")?;
    let next = probe.forward(Uuid::now_v7(), 1, command, payload.clone());
    send_and_hear(probe, &next, None).await.map_err(|e| {
        format!("dead-lettered ({reason}), but the next command went unanswered: {e}")
    })?;
    Ok(format!(
        "dead-lettered ({reason}); the next command was answered"
    ))
}

/// A command the participant does not offer is dead-lettered, not answered.
async fn unknown_command(probe: &mut Probe) -> Result<String, String> {
    let command = probe.forward(
        Uuid::now_v7(),
        1,
        "NoSuchCommand",
        Value::Object(Default::default()),
    );
    let payload = command.encode();
    probe.send(&command, None).await?;
    let letter = probe.dead_letter(&payload).await?;
    if probe.unasked(&command.message_id) > 0 {
        return Err("the command was answered as well as dead-lettered".into());
    }
    let reason = letter.reason.unwrap_or_default();
    if reason.contains("NoSuchCommand") {
        Ok(format!("dead-lettered: {reason}"))
    } else {
        Err(format!(
            "dead-lettered with a reason that does not name the command: `{reason}`"
        ))
    }
}

async fn send_and_hear(
    probe: &mut Probe,
    command: &saga_protocol::CommandEnvelope,
    traceparent: Option<&str>,
) -> Result<Heard, String> {
    probe.send(command, traceparent).await?;
    probe.reply(&command.message_id).await
}

fn show(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Succeeded { output } => format!("succeeded {output}"),
        Outcome::Rejected { reason } => format!("rejected ({reason})"),
        Outcome::Failed { reason } => format!("failed ({reason})"),
    }
}
