//! The bus trusts identities, not the network: every process of the system runs as its own
//! NATS user with its role's permissions, a client without credentials is turned away, and a
//! participant's key cannot forge another's reply, publish a command, read another's commands
//! or call the admin subjects. Real processes and nats-server.

use crate::system::{Backend, Service, System};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use saga_protocol::auth::{Credentials, Role};
use saga_protocol::{CommandEnvelope, Outcome, ReplyEnvelope, Timestamp, subjects};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A client as identity `name`, recording the errors the server sends it.
async fn client_as(
    system: &System,
    name: &str,
    role: Role,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let Credentials::NKey { seed, .. } = system.nats.identities().credentials(name).unwrap() else {
        panic!("the test system runs with authentication");
    };
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::with_nkey(seed)
        .custom_inbox_prefix(role.inbox_prefix())
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(system.nats.url())
        .await
        .expect("connect with a valid seed");
    (client, errors)
}

/// Waits until the server has refused `subject` to this client.
async fn refused(errors: &Mutex<Vec<String>>, action: &str, subject: &str) {
    saga_testkit::wait_for(&format!("{action} to {subject} refused"), LONG, || {
        let found = errors.lock().unwrap().iter().any(|e| {
            e.to_lowercase().contains("permissions violation")
                && e.contains(action)
                && e.contains(subject)
        });
        std::future::ready(found.then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", errors.lock().unwrap()));
}

/// The command in flight on the commands stream, as the harness (allowed to read it) sees it.
async fn in_flight(system: &System) -> CommandEnvelope {
    let js = jetstream::new(system.client.clone());
    let stream = js.get_stream(subjects::COMMANDS_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let message = tokio::time::timeout(LONG, messages.next())
        .await
        .expect("a command")
        .unwrap()
        .unwrap();
    CommandEnvelope::decode(&message.payload).unwrap()
}

async fn stored(system: &System, stream: &str) -> u64 {
    let js = jetstream::new(system.client.clone());
    let mut stream = js.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_key_cannot_forge_replies_or_commands_and_no_credentials_get_nothing() {
    let mut system = System::start(Backend::Sqlite).await;
    system.open_account("victim", 10_000).await;
    // Given a saga waiting on the account participant, which is down.
    system.kill(Service::Account);
    let id = system.start_saga("victim", 500).await;
    let reserve = in_flight(&system).await;
    assert_eq!(reserve.command, "ReserveCredit");
    let before = system.event_types(id).await;

    // No credentials: the server turns the client away.
    let anonymous = async_nats::connect(system.nats.url()).await;
    let error = anonymous
        .expect_err("connected without credentials")
        .to_string();
    assert!(
        error.to_lowercase().contains("authorization"),
        "refused for another reason: {error}"
    );

    // The order participant's key, in an attacker's hands.
    let (order, errors) = client_as(&system, "order", Role::participant("order").unwrap()).await;
    let forged = ReplyEnvelope::answering(
        &reserve,
        Outcome::Succeeded {
            output: json!({"customer_id": "victim", "amount": 500, "reserved": 500}),
        },
        Timestamp::now(),
    );
    let reply_subject = subjects::reply("account");
    order
        .publish(reply_subject.clone(), forged.encode().into())
        .await
        .unwrap();
    let command_subject = subjects::command("account", "ReleaseCredit");
    order
        .publish(command_subject.clone(), reserve.encode().into())
        .await
        .unwrap();
    let admin_subject = subjects::admin("account");
    order
        .publish(
            admin_subject.clone(),
            br#"{"op":"deposit","customer_id":"victim","amount":1}"#
                .to_vec()
                .into(),
        )
        .await
        .unwrap();
    order.flush().await.unwrap();
    refused(&errors, "Publish", &reply_subject).await;
    refused(&errors, "Publish", &command_subject).await;
    refused(&errors, "Publish", &admin_subject).await;

    // Nor may it read the account participant's commands through a consumer of its own.
    let js = jetstream::new(order.clone());
    let stolen = js
        .get_stream_no_info(subjects::COMMANDS_STREAM)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("participant-order".into()),
            filter_subject: subjects::commands_for("account"),
            ..Default::default()
        })
        .await;
    assert!(
        stolen.is_err(),
        "a consumer of another participant's commands"
    );
    refused(
        &errors,
        "Publish",
        "$JS.API.CONSUMER.CREATE.SAGA_COMMANDS.participant-order.saga.cmd.account",
    )
    .await;

    // Then nothing it sent was stored, and the saga recorded no reply (its step only timed
    // out and was retried, waiting for the account participant).
    assert_eq!(
        stored(&system, subjects::REPLIES_STREAM).await,
        0,
        "a reply stored"
    );
    let js = jetstream::new(system.client.clone());
    let commands = js.get_stream(subjects::COMMANDS_STREAM).await.unwrap();
    assert!(
        commands
            .get_last_raw_message_by_subject(&command_subject)
            .await
            .is_err(),
        "the forged command was stored"
    );
    let after = system.event_types(id).await;
    assert_eq!(after[..before.len()], before[..]);
    assert!(
        !after.iter().any(|t| t == "StepSucceeded"),
        "a reply was recorded: {after:?}"
    );

    // And the real account participant, with its own key, moves it on.
    system.spawn(Service::Account);
    let status = system.wait_terminal(&[id], LONG).await;
    assert_eq!(status[&id], "completed");
    let balance = saga_participants::admin::balance(&system.client, "victim")
        .await
        .unwrap();
    assert_eq!(
        (balance.available, balance.reserved),
        (9_500, 500),
        "reserved once, by the real saga only"
    );
}
