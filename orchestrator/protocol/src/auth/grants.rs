//! The subjects each role is granted: its own publishes, the JetStream API calls of its
//! streams and consumers.

use crate::subjects;

const API: &str = "$JS.API";

/// What a process needs to use durable pull consumer `consumer` of `stream`, filtered on
/// `filter`: create it with that filter only, read its state, pull, acknowledge.
fn consumer_grants(stream: &str, consumer: &str, filter: &str) -> Vec<String> {
    vec![
        format!("{API}.CONSUMER.CREATE.{stream}.{consumer}.{filter}"),
        format!("{API}.CONSUMER.INFO.{stream}.{consumer}"),
        format!("{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]
}

fn protocol_streams() -> [&'static str; 3] {
    [
        subjects::COMMANDS_STREAM,
        subjects::REPLIES_STREAM,
        subjects::DLQ_STREAM,
    ]
}

pub(super) fn orchestrator_publish() -> Vec<String> {
    let leases = format!("KV_{}", subjects::LEASES_BUCKET);
    let mut publish = vec![
        subjects::COMMANDS_SUBJECTS.to_string(),
        subjects::dead_letter("orchestrator"),
        format!("{API}.INFO"),
    ];
    for stream in protocol_streams().into_iter().chain([leases.as_str()]) {
        publish.push(format!("{API}.STREAM.CREATE.{stream}"));
        publish.push(format!("{API}.STREAM.UPDATE.{stream}"));
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend(consumer_grants(
        subjects::REPLIES_STREAM,
        "orchestrator",
        subjects::REPLIES_SUBJECTS,
    ));
    // The lease bucket: writes, reads, and the ordered consumer that lists its keys.
    publish.extend([
        format!("$KV.{}.>", subjects::LEASES_BUCKET),
        format!("{API}.DIRECT.GET.{leases}.>"),
        format!("{API}.STREAM.MSG.GET.{leases}"),
        // An ordered consumer has no name: created on the bare subject.
        format!("{API}.CONSUMER.CREATE.{leases}"),
        format!("{API}.CONSUMER.CREATE.{leases}.>"),
        format!("{API}.CONSUMER.DELETE.{leases}.>"),
        format!("$JS.FC.{leases}.>"),
    ]);
    publish
}

pub(super) fn participant_publish(name: &str) -> Vec<String> {
    let mut publish = vec![
        subjects::reply(name),
        subjects::dead_letter(name),
        format!("{API}.INFO"),
    ];
    // A participant that starts first creates the streams as the orchestrator would (it may
    // create them, not change or delete them).
    for stream in protocol_streams() {
        publish.push(format!("{API}.STREAM.CREATE.{stream}"));
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend(consumer_grants(
        subjects::COMMANDS_STREAM,
        &subjects::participant_consumer(name),
        &subjects::commands_for(name),
    ));
    publish
}

pub(super) fn admin_publish() -> Vec<String> {
    let dlq = subjects::DLQ_STREAM;
    let mut publish = vec![
        format!("{}.>", subjects::ADMIN_PREFIX),
        // Replaying a dead letter publishes it to its original subject again.
        subjects::COMMANDS_SUBJECTS.to_string(),
        subjects::REPLIES_SUBJECTS.to_string(),
        format!("{API}.INFO"),
    ];
    for stream in protocol_streams() {
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend([
        format!("{API}.STREAM.MSG.GET.{dlq}"),
        format!("{API}.STREAM.MSG.DELETE.{dlq}"),
        format!("{API}.DIRECT.GET.{dlq}.>"),
        format!("{API}.CONSUMER.CREATE.{dlq}"),
        format!("{API}.CONSUMER.CREATE.{dlq}.>"),
        format!("{API}.CONSUMER.DELETE.{dlq}.>"),
        format!("{API}.CONSUMER.MSG.NEXT.{dlq}.>"),
        format!("$JS.ACK.{dlq}.>"),
        format!("$JS.FC.{dlq}.>"),
    ]);
    publish
}
