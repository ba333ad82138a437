//! `saga dlq list` and `saga dlq replay <seq>`: the dead-letter stream, for operators.
//!
//! Every consumer dead-letters what it cannot use to `saga.dlq.{consumer}` with headers
//! saying why and where from. Replaying publishes the original payload to its original
//! subject again (with a fresh `Nats-Msg-Id`, so JetStream's de-duplication does not drop it)
//! and removes it from the dead-letter stream.

use super::{DlqAction, DlqArgs, Error, Output};
use async_nats::jetstream::{self, message::PublishMessage};
use saga_protocol::{headers, subjects};
use std::process::ExitCode;

pub async fn run(args: DlqArgs) -> Result<ExitCode, Error> {
    let client = args.admin.connect().await?;
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(subjects::DLQ_STREAM)
        .await
        .map_err(|e| format!("no dead-letter stream {}: {e}", subjects::DLQ_STREAM))?;
    match args.action {
        DlqAction::List { output } => {
            let info = stream.info().await?;
            let (first, last) = (info.state.first_sequence, info.state.last_sequence);
            let mut rows = Vec::new();
            if info.state.messages > 0 {
                for seq in first..=last {
                    // Replayed messages are deleted, leaving gaps.
                    let Ok(msg) = stream.get_raw_message(seq).await else {
                        continue;
                    };
                    let header = |name: &str| {
                        msg.headers
                            .get(name)
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    };
                    rows.push(serde_json::json!({
                        "sequence": seq,
                        "time": msg.time.to_string(),
                        "consumer": header(headers::DLQ_CONSUMER),
                        "original_subject": header(headers::DLQ_ORIGINAL_SUBJECT),
                        "original_sequence": header(headers::DLQ_ORIGINAL_SEQUENCE),
                        "reason": header(headers::DLQ_REASON),
                        "bytes": msg.payload.len(),
                    }));
                }
            }
            if output == Output::Json {
                println!("{}", serde_json::Value::Array(rows));
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = super::table(["seq", "time", "consumer", "from", "reason"]);
            for r in &rows {
                t.add_row([
                    r["sequence"].to_string(),
                    r["time"].as_str().unwrap_or_default().to_string(),
                    r["consumer"].as_str().unwrap_or_default().to_string(),
                    format!(
                        "{} #{}",
                        r["original_subject"].as_str().unwrap_or_default(),
                        r["original_sequence"].as_str().unwrap_or_default()
                    ),
                    r["reason"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            super::print_table(&t);
            println!("{} dead letters", rows.len());
        }
        DlqAction::Replay { sequence } => {
            let msg = stream
                .get_raw_message(sequence)
                .await
                .map_err(|e| format!("no dead letter #{sequence}: {e}"))?;
            let subject = msg
                .headers
                .get(headers::DLQ_ORIGINAL_SUBJECT)
                .map(|v| v.to_string())
                .ok_or_else(|| {
                    format!(
                        "dead letter #{sequence} has no {} header",
                        headers::DLQ_ORIGINAL_SUBJECT
                    )
                })?;
            let publish = PublishMessage::build()
                .payload(msg.payload.clone())
                .message_id(format!("dlq-replay.{}.{sequence}", subjects::DLQ_STREAM));
            js.send_publish(subject.clone(), publish).await?.await?;
            stream.delete_message(sequence).await?;
            println!("replayed dead letter #{sequence} to {subject}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
