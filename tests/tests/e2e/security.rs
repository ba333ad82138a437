//! The bus trusts identities, not the network: every process of the system runs as its own
//! NATS user with its role's permissions over TLS, a client without credentials or without
//! TLS is turned away, and a
//! participant's key cannot forge another's reply, publish a command, read another's commands
//! or call the admin subjects. Real processes and nats-server.

use crate::system::{Backend, Service, System};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use saga_protocol::auth::Role;
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
    let credentials = system.nats.identities().credentials(name).unwrap();
    let seed = credentials
        .seed()
        .expect("the test system runs with authentication")
        .to_string();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::with_nkey(seed)
        .add_root_certificates(
            credentials
                .ca
                .clone()
                .expect("the test system runs with TLS"),
        )
        .require_tls(true)
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

/// Talks plain TCP to the server on `port`: its greeting, and what it answers a CONNECT and
/// a PING until it closes the connection.
fn plain_connect(port: u16) -> (String, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    (&stream)
        .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = reader.read_to_string(&mut answer);
    (info, answer)
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

    // No credentials, over TLS with the right CA: the server turns the client away.
    let ca = system
        .nats
        .identities()
        .ca()
        .expect("the test system runs with TLS");
    let anonymous = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.clone())
        .require_tls(true)
        .connect(system.nats.url())
        .await;
    let error = anonymous
        .expect_err("connected without credentials")
        .to_string();
    assert!(
        error.to_lowercase().contains("authorization"),
        "refused for another reason: {error}"
    );
    // Plain TCP: the server asks for TLS in its greeting and hangs up on a plain CONNECT.
    let (info, answer) = plain_connect(system.nats.port());
    assert!(info.contains("\"tls_required\":true"), "{info}");
    assert!(
        !answer.contains("PONG"),
        "a plain client was served: {answer}"
    );
    // A client that does not trust the CA (a stranger's server, to it) does not connect.
    let seed = system.nats.identities().credentials("order").unwrap();
    let untrusting = async_nats::ConnectOptions::with_nkey(seed.seed().unwrap().to_string())
        .connect(system.nats.url())
        .await;
    assert!(untrusting.is_err(), "connected without trusting the CA");

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

    // No process logs a seed, its own or another's.
    for name in ["orchestrator", "account", "order", "admin"] {
        let credentials = system.nats.identities().credentials(name).unwrap();
        let seed = credentials.seed().unwrap();
        for service in [Service::Orchestrator, Service::Order] {
            assert!(
                !system.log(service).contains(seed),
                "the {name} seed in a log"
            );
        }
    }

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
