//! Chaos: 1,000 sagas while processes are SIGKILLed and restarted, messages are duplicated
//! and delayed, and the nats-server itself restarts. Every saga must end Completed,
//! Compensated or Stuck with a reason, nothing may apply twice, and money is conserved.

use crate::system::{Backend, REVIEW_LIMIT, Service, System};
use async_nats::jetstream;
use futures::StreamExt;
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

/// Publishes every message on `subject` twice more, each copy after its own delay of up to
/// 1.5s and with its own `Nats-Msg-Id`, so JetStream's de-duplication cannot hide it.
async fn duplicate_and_delay(
    client: async_nats::Client,
    subject: &str,
) -> tokio::task::JoinHandle<()> {
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    let js = jetstream::new(client);
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let headers = msg.headers.clone().unwrap_or_default();
            if headers.get("Saga-Test-Copy").is_some() {
                continue;
            }
            let id = headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            for n in 1..=2u64 {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (&id, n).hash(&mut h);
                let delay = Duration::from_millis(h.finish() % 1_500);
                let (js, subject, payload, id) = (
                    js.clone(),
                    msg.subject.clone(),
                    msg.payload.clone(),
                    id.clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let copy = jetstream::message::PublishMessage::build()
                        .payload(payload)
                        .message_id(format!("{id}.copy{n}"))
                        .header("Saga-Test-Copy", n.to_string().as_str());
                    if let Ok(ack) = js.send_publish(subject, copy).await {
                        let _ = ack.await;
                    }
                });
            }
        }
    })
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

/// Starts sagas `range`, retrying a start the API could not take (the orchestrator may be
/// restarting); returns their ids and amounts.
async fn start(system: &System, range: std::ops::Range<usize>) -> Vec<(Uuid, i64)> {
    let mut out = Vec::new();
    for i in range {
        let (customer, amount) = nth(i);
        let id = saga_testkit::wait_for("the API to take a start", Duration::from_secs(60), || {
            let customer = customer.clone();
            let key = format!("chaos-{i}");
            async move { system.try_start_saga(&customer, amount, &key).await }
        })
        .await
        .unwrap();
        out.push((id, amount));
    }
    out
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
    let mut noise = vec![
        duplicate_and_delay(system.client.clone(), "saga.cmd.>").await,
        duplicate_and_delay(system.client.clone(), "saga.reply.>").await,
    ];
    let quarter = SAGAS / 4;
    let mut sagas = start(&system, 0..quarter).await;
    system.kill(Service::Orchestrator);
    system.spawn(Service::Orchestrator);
    system.wait_ready().await;

    sagas.extend(start(&system, quarter..2 * quarter).await);
    system.kill(Service::Account);
    system.kill(Service::Orchestrator);
    system.spawn(Service::Orchestrator);
    system.spawn(Service::Account);
    system.wait_ready().await;

    sagas.extend(start(&system, 2 * quarter..3 * quarter).await);
    system.nats.restart().expect("nats-server restart");
    system.kill(Service::Order);
    system.spawn(Service::Order);
    noise.push(duplicate_and_delay(system.client.clone(), "saga.cmd.>").await);

    sagas.extend(start(&system, 3 * quarter..SAGAS).await);
    system.kill(Service::Orchestrator);
    system.spawn(Service::Orchestrator);
    system.wait_ready().await;

    let ids: Vec<Uuid> = sagas.iter().map(|(id, _)| *id).collect();
    let statuses = system.wait_terminal(&ids, Duration::from_secs(600)).await;
    for n in &noise {
        n.abort();
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
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
        }
    }
    eprintln!("chaos outcome: {count:?}");
    assert_eq!(
        count.get("stuck"),
        None,
        "no saga should need an operator here: {count:?}"
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
}
