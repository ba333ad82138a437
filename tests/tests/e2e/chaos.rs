//! Chaos: 1,000 sagas while processes are SIGKILLed and restarted, messages are duplicated
//! and delayed, and the nats-server itself restarts. Every saga must end Completed,
//! Compensated or Stuck with a reason, nothing may apply twice, and money is conserved.
//! The faults are proven to have happened: each kill struck sagas in flight and ended its
//! process by the signal, and each copy was stored, delivered and absorbed (the participants
//! count it as a duplicate; the orchestrator records no reply twice).

use crate::copies::{Copier, Options, Tally, assert_absorbed};
use crate::system::{Backend, REVIEW_LIMIT, Service, System};
use futures::StreamExt;
use saga_participants::Kind;
use saga_protocol::subjects;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use uuid::Uuid;

const SAGAS: usize = 1_000;
const CUSTOMERS: usize = 10;
const DEPOSIT: i64 = 1_000_000_000;

/// place_order with timeouts and retries sized for restarts that take a second or two.
const DEFINITION: &str = r#"
[saga]
name = "place_order"
version = 1

[input]
customer_id = "string"
amount = "integer"

[compensation_retry]
max_attempts = 30
initial_backoff = "200ms"
max_backoff = "2s"

[[step]]
name = "reserve_credit"
participant = "account"
command = "ReserveCredit"
compensation = "ReleaseCredit"
timeout = "3s"
[step.retry]
max_attempts = 10
initial_backoff = "200ms"
max_backoff = "2s"

[[step]]
name = "create_order"
participant = "order"
command = "CreateOrder"
compensation = "CancelOrder"
timeout = "3s"
[step.retry]
max_attempts = 10
initial_backoff = "200ms"
max_backoff = "2s"

[[step]]
name = "approve_order"
participant = "order"
command = "ApproveOrder"
kind = "pivot"
timeout = "3s"
"#;

/// Two copies of each message, each after its own delay of up to 1.5 s (a hash of the
/// message id and the copy's number, so a rerun delays alike); a copy not stored while the
/// nats-server restarts is tried again for up to a minute.
fn delayed() -> Options {
    Options {
        copies: 2,
        delay: |id, n| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (id, n).hash(&mut h);
            Duration::from_millis(h.finish() % 1_500)
        },
        retry_for: Duration::from_secs(60),
    }
}

fn nth(i: usize) -> (String, i64) {
    let customer = format!("c-{}", i % CUSTOMERS);
    let amount = if i % 10 == 9 {
        REVIEW_LIMIT + 1
    } else {
        100 + i as i64
    };
    (customer, amount)
}

/// Clients starting sagas at once: enough that several sagas are in flight when a process
/// is killed (a single client keeps barely one running), few enough not to swamp two cores:
/// sixteen, with every message copied twice, left the orchestrator's replies minutes behind
/// the 3 s timeouts, and the retries that followed never caught up.
const CLIENTS: usize = 4;

/// Starts sagas `range` from [`CLIENTS`] clients at once, retrying a start the API could not
/// take (the orchestrator may be restarting) under its idempotency key; returns their ids and
/// amounts, in order.
async fn start(system: &System, range: std::ops::Range<usize>) -> Vec<(Uuid, i64)> {
    futures::stream::iter(range)
        .map(|i| async move {
            let (customer, amount) = nth(i);
            let key = format!("chaos-{i}");
            let id =
                saga_testkit::wait_for("the API to take a start", Duration::from_secs(60), || {
                    system.try_start_saga(&customer, amount, &key)
                })
                .await
                .unwrap();
            (id, amount)
        })
        .buffered(CLIENTS)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_thousand_sagas_with_kills_duplicates_delays_and_a_nats_restart() {
    let mut system = System::start_with(Backend::Sqlite, Some(DEFINITION)).await;
    let mut deposits = HashMap::new();
    for i in 0..CUSTOMERS {
        let customer = format!("c-{i}");
        system.open_account(&customer, DEPOSIT).await;
        deposits.insert(customer, DEPOSIT);
    }
    let (commands, replies) = (Tally::shared(), Tally::shared());
    let client = system.client.clone();
    let mut noise = vec![
        Copier::start(client.clone(), "saga.cmd.>", delayed(), &commands).await,
        Copier::start(client.clone(), "saga.reply.>", delayed(), &replies).await,
    ];
    let mut kills = Vec::new();
    let quarter = SAGAS / 4;
    let mut sagas = start(&system, 0..quarter).await;
    kills.push(system.kill_in_flight(Service::Orchestrator).await);
    system.spawn(Service::Orchestrator);
    system.wait_ready().await;

    sagas.extend(start(&system, quarter..2 * quarter).await);
    kills.push(system.kill_in_flight(Service::Account).await);
    kills.push(system.kill_in_flight(Service::Orchestrator).await);
    system.spawn(Service::Orchestrator);
    system.spawn(Service::Account);
    system.wait_ready().await;

    sagas.extend(start(&system, 2 * quarter..3 * quarter).await);
    system.nats.restart().expect("nats-server restart");
    kills.push(system.kill_in_flight(Service::Order).await);
    system.spawn(Service::Order);
    // A second command copier subscribed after the restart; the two store each copy once
    // between them (same copy ids), and the tally counts it once.
    noise.push(Copier::start(client.clone(), "saga.cmd.>", delayed(), &commands).await);

    sagas.extend(start(&system, 3 * quarter..SAGAS).await);
    kills.push(system.kill_in_flight(Service::Orchestrator).await);
    system.spawn(Service::Orchestrator);
    system.wait_ready().await;

    let ids: Vec<Uuid> = sagas.iter().map(|(id, _)| *id).collect();
    let statuses = system.wait_terminal(&ids, Duration::from_secs(600)).await;
    for copier in noise {
        copier.finish().await;
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut stuck = Vec::new();
    for (id, amount) in &sagas {
        let status = statuses[id].as_str();
        *count.entry(status).or_default() += 1;
        assert!(
            matches!(status, "completed" | "compensated" | "stuck"),
            "saga {id}: {status}"
        );
        if *amount > REVIEW_LIMIT {
            assert_ne!(
                status, "completed",
                "saga {id} above the review limit completed"
            );
        }
        if status == "stuck" {
            let saga = system.saga(*id).await.unwrap();
            assert!(
                saga["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "stuck without a reason: {saga}"
            );
            stuck.push(format!("{id}: {}", saga["reason"]));
        }
    }
    eprintln!("chaos outcome: {count:?}");
    assert_eq!(
        count.get("stuck"),
        None,
        "no saga should need an operator here: {count:?}, stuck: {stuck:#?}"
    );
    // Nothing applied twice: money is conserved and each completed saga approved one order.
    let orders = system.assert_conserved(&deposits).await;
    assert_eq!(
        orders.get("approved").copied().unwrap_or(0),
        count.get("completed").copied().unwrap_or(0)
    );
    assert!(
        orders.values().sum::<usize>() <= SAGAS,
        "at most one order per saga: {orders:?}"
    );

    // Every kill struck sagas in flight.
    for kill in &kills {
        let spanned = system.assert_spanned(kill).await;
        eprintln!(
            "{} killed with {} sagas running, {spanned} of them in flight across the kill",
            kill.service.name(),
            kill.in_flight.len()
        );
    }

    // The copies were stored, delivered and absorbed.
    let commands = std::mem::take(&mut *commands.lock().unwrap());
    let replies = std::mem::take(&mut *replies.lock().unwrap());
    commands.assert_complete(2);
    replies.assert_complete(2);
    assert!(!replies.stored.is_empty(), "no copy of a reply was stored");
    for kind in [Kind::Account, Kind::Order] {
        let consumer = kind.consumer_name();
        system
            .wait_drained(
                subjects::COMMANDS_STREAM,
                &consumer,
                Duration::from_secs(120),
            )
            .await;
    }
    system
        .wait_drained(
            subjects::REPLIES_STREAM,
            saga_orchestrator::transport::REPLY_CONSUMER,
            Duration::from_secs(120),
        )
        .await;
    // A participant's counter starts again with each process: only the copies published
    // after its last kill are certain to be counted by the process running now.
    let last_kill: HashMap<Service, std::time::Instant> =
        kills.iter().map(|k| (k.service, k.dead)).collect();
    let absorbed = assert_absorbed(&system, &commands, &last_kill).await;
    system.assert_each_reply_recorded_once(&ids).await;
    eprintln!(
        "copies stored: {} of commands ({} publishes retried), {} of replies ({} retried); \
         (copies since the last kill, duplicates counted): {absorbed:?}",
        commands.stored.len(),
        commands.retried,
        replies.stored.len(),
        replies.retried
    );
}
