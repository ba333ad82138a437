//! The place_order saga end to end, on SQLite and on PostgreSQL.

use crate::copies::{Copier, Options, Tally, assert_absorbed};
use crate::system::{Backend, REVIEW_LIMIT, Service, System};
use futures::StreamExt;
use saga_participants::Kind;
use saga_protocol::subjects;
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

/// Clients starting sagas at once in [`start_burst`].
const CLIENTS: usize = 16;

/// Starts sagas `range` from [`CLIENTS`] clients at once, so that many are in flight
/// together (a single client keeps barely one saga running: each ends about as fast as the
/// next starts); returns them in order.
async fn start_burst(system: &System, range: std::ops::Range<usize>) -> Vec<(Uuid, &'static str)> {
    futures::stream::iter(range)
        .map(|i| async move {
            let (customer, amount, expected) = nth(i);
            (system.start_saga(&customer, amount).await, expected)
        })
        .buffered(CLIENTS)
        .collect()
        .await
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

/// Every command published twice more (see [`crate::copies`]): each copy is stored by
/// JetStream, delivered, and answered from the participant's inbox, and nothing applies twice.
async fn commands_delivered_three_times(backend: Backend) {
    let system = System::start(backend).await;
    let deposits = open_accounts(&system).await;
    let tally = Tally::shared();
    let copier = Copier::start(
        system.client.clone(),
        "saga.cmd.>",
        Options::immediate(),
        &tally,
    )
    .await;
    let sagas = start_batch(&system, 0..60).await;
    assert_outcome(&system, &sagas, &deposits).await;
    copier.finish().await;
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    tally.assert_complete(2);
    // Three commands per completed saga, five per compensated one: all of them were copied.
    let commands = sagas
        .iter()
        .map(|(_, e)| if *e == "completed" { 3 } else { 5 })
        .sum::<usize>();
    assert!(
        tally.originals.len() >= commands,
        "the copier saw {} commands of the {commands} sent",
        tally.originals.len()
    );
    for kind in [Kind::Account, Kind::Order] {
        system
            .wait_drained(
                subjects::COMMANDS_STREAM,
                &kind.consumer_name(),
                Duration::from_secs(60),
            )
            .await;
    }
    let absorbed = assert_absorbed(&system, &tally, &HashMap::new()).await;
    eprintln!(
        "{} commands, {} copies stored; (copies, duplicates counted): {absorbed:?}",
        tally.originals.len(),
        tally.stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_delivered_three_times_applies_once_on_sqlite() {
    commands_delivered_three_times(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_delivered_three_times_applies_once_on_postgres() {
    commands_delivered_three_times(Backend::Postgres).await;
}

/// Starts a batch, SIGKILLs `victim` once some sagas have ended while others still run,
/// starts it again, and checks that every saga still ends correctly, and that the kill did
/// strike sagas in flight.
async fn killed_mid_batch(backend: Backend, victim: Service) {
    let mut system = System::start(backend).await;
    let deposits = open_accounts(&system).await;
    let first = start_burst(&system, 0..100).await;
    // Wait until the batch is under way (some sagas ended, others still run), then kill
    // without warning.
    let under_way = saga_testkit::wait_for(
        "10 sagas to have ended while others still run",
        Duration::from_secs(60),
        || async {
            let counts = system.status_counts().await?;
            let n = |status: &str| counts.get(status).copied().unwrap_or(0);
            let ended = n("completed") + n("compensated");
            (ended >= 10 && n("running") + n("compensating") > 0).then_some(())
        },
    )
    .await;
    if let Err(e) = under_way {
        panic!("{e}: {:?}\n{}", system.status_counts().await, system.logs());
    }
    let kill = system.kill_in_flight(victim).await;
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
    let spanned = system.assert_spanned(&kill).await;
    eprintln!(
        "{} sagas running just before the kill, {spanned} of them in flight across it",
        kill.in_flight.len()
    );
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
