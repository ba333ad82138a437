//! The place_order saga end to end, on SQLite and on PostgreSQL.

use crate::system::{Backend, REVIEW_LIMIT, Service, System};
use async_nats::jetstream;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const CUSTOMERS: usize = 10;
const DEPOSIT: i64 = 100_000_000;

/// Opens the customers' accounts and returns what each deposited.
pub(crate) async fn open_accounts(system: &System) -> HashMap<String, i64> {
    let mut deposits = HashMap::new();
    for i in 0..CUSTOMERS {
        let customer = format!("c-{i}");
        system.open_account(&customer, DEPOSIT).await;
        deposits.insert(customer, DEPOSIT);
    }
    deposits
}

/// The i-th saga of a batch: every tenth is above the review limit.
pub(crate) fn nth(i: usize) -> (String, i64, &'static str) {
    let customer = format!("c-{}", i % CUSTOMERS);
    if i % 10 == 9 {
        (customer, REVIEW_LIMIT + 1 + i as i64, "compensated")
    } else {
        (customer, 100 + i as i64, "completed")
    }
}

/// Starts sagas `range` and returns their ids with the status each must end in.
async fn start_batch(system: &System, range: std::ops::Range<usize>) -> Vec<(Uuid, &'static str)> {
    let mut started = Vec::new();
    for i in range {
        let (customer, amount, expected) = nth(i);
        started.push((system.start_saga(&customer, amount).await, expected));
    }
    started
}

/// Every saga ended as expected, money is conserved, and each saga made exactly one order.
pub(crate) async fn assert_outcome(
    system: &System,
    sagas: &[(Uuid, &'static str)],
    deposits: &HashMap<String, i64>,
) {
    let ids: Vec<Uuid> = sagas.iter().map(|(id, _)| *id).collect();
    let statuses = system.wait_terminal(&ids, Duration::from_secs(180)).await;
    for (id, expected) in sagas {
        assert_eq!(statuses[id], *expected, "saga {id}");
    }
    let orders = system.assert_conserved(deposits).await;
    let completed = sagas.iter().filter(|(_, e)| *e == "completed").count();
    let compensated = sagas.len() - completed;
    assert_eq!(
        orders.get("approved").copied().unwrap_or(0),
        completed,
        "approved orders"
    );
    assert_eq!(
        orders.get("cancelled").copied().unwrap_or(0),
        compensated,
        "cancelled orders"
    );
    assert_eq!(
        orders.values().sum::<usize>(),
        sagas.len(),
        "one order per saga"
    );
}

async fn batch_of_200(backend: Backend) {
    let system = System::start(backend).await;
    let deposits = open_accounts(&system).await;
    let sagas = start_batch(&system, 0..200).await;
    assert_outcome(&system, &sagas, &deposits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_completes_or_compensates_and_conserves_money_on_sqlite() {
    batch_of_200(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_completes_or_compensates_and_conserves_money_on_postgres() {
    batch_of_200(Backend::Postgres).await;
}

/// Republishes every command twice more with different `Nats-Msg-Id`s, so JetStream's own
/// de-duplication cannot hide the copies from the participants.
async fn triple_every_command(client: async_nats::Client) -> tokio::task::JoinHandle<()> {
    let mut sub = client.subscribe("saga.cmd.>").await.unwrap();
    let js = jetstream::new(client);
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let is_copy = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Saga-Test-Copy"))
                .is_some();
            if is_copy {
                continue;
            }
            let id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            for n in 1..=2 {
                let copy = jetstream::message::PublishMessage::build()
                    .payload(msg.payload.clone())
                    .message_id(format!("{id}.copy{n}"))
                    .header("Saga-Test-Copy", n.to_string().as_str());
                if let Ok(ack) = js.send_publish(msg.subject.clone(), copy).await {
                    let _ = ack.await;
                }
            }
        }
    })
}

async fn commands_delivered_three_times(backend: Backend) {
    let system = System::start(backend).await;
    let deposits = open_accounts(&system).await;
    let duplicator = triple_every_command(system.client.clone()).await;
    let sagas = start_batch(&system, 0..60).await;
    assert_outcome(&system, &sagas, &deposits).await;
    duplicator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_delivered_three_times_applies_once_on_sqlite() {
    commands_delivered_three_times(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_delivered_three_times_applies_once_on_postgres() {
    commands_delivered_three_times(Backend::Postgres).await;
}

/// Starts a batch, SIGKILLs `victim` once some sagas have ended, starts it again, and
/// checks that every saga still ends correctly.
async fn killed_mid_batch(backend: Backend, victim: Service) {
    let mut system = System::start(backend).await;
    let deposits = open_accounts(&system).await;
    let first = start_batch(&system, 0..100).await;
    let ids: Vec<Uuid> = first.iter().map(|(id, _)| *id).collect();
    // Wait until the batch is under way, then kill without warning.
    system
        .wait_terminal(&ids[..10], Duration::from_secs(60))
        .await;
    system.kill(victim);
    let second = if victim == Service::Orchestrator {
        Vec::new()
    } else {
        // The orchestrator keeps taking sagas while the participant is down.
        start_batch(&system, 100..150).await
    };
    system.spawn(victim);
    system.wait_ready().await;
    let all: Vec<_> = first.into_iter().chain(second).collect();
    assert_outcome(&system, &all, &deposits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_mid_batch_every_saga_still_ends_on_sqlite() {
    killed_mid_batch(Backend::Sqlite, Service::Orchestrator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_mid_batch_every_saga_still_ends_on_postgres() {
    killed_mid_batch(Backend::Postgres, Service::Orchestrator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_participant_killed_mid_batch_every_saga_still_ends_on_sqlite() {
    killed_mid_batch(Backend::Sqlite, Service::Account).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_participant_killed_mid_batch_every_saga_still_ends_on_postgres() {
    killed_mid_batch(Backend::Postgres, Service::Order).await;
}
