//! SIGTERM to an orchestrator under load, as Kubernetes sends it on a rollout or a drain:
//! the orchestrator stops taking new work (its API refuses connections at once), finishes or
//! hands off what it holds, exits cleanly within the grace the manifests give it, and no
//! saga is lost or started twice.

use crate::place_order::{assert_outcome, nth, open_accounts};
use crate::system::{Backend, Service, System};
use saga_testkit::{free_port, wait_for};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const SAGAS: usize = 150;
/// SIGTERM goes out once this many sagas are started, so work is in flight on both sides.
const SIGTERM_AFTER: usize = 50;
/// The longest a SIGTERMed orchestrator may take to exit: replies in hand, then open HTTP
/// requests, each bounded by SHUTDOWN_GRACE. The manifests' terminationGracePeriodSeconds is
/// checked against the same bound (tests/tests/deploy), so passing here means a pod is never
/// SIGKILLed mid-drain.
fn exit_deadline() -> Duration {
    2 * saga_orchestrator::runtime::SHUTDOWN_GRACE
}

/// Clients starting sagas at the same time.
const CLIENTS: usize = 4;

/// Starts sagas 0..SAGAS from [`CLIENTS`] concurrent clients, each saga with its own
/// idempotency key, through whichever of `apis` answers, as clients behind a Service would:
/// a connection refused or cut is retried on the next endpoint with the same key, so a start
/// that was accepted but not answered is not started twice.
fn load(
    apis: Vec<String>,
    started: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<(Uuid, &'static str)>> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let (http, apis, started) = (http.clone(), apis.clone(), started.clone());
            clients.spawn(async move {
                let mut sagas = Vec::new();
                for i in (client..SAGAS).step_by(CLIENTS) {
                    let id = start_one(&http, &apis, i).await;
                    sagas.push((i, id, nth(i).2));
                    started.fetch_add(1, Ordering::SeqCst);
                }
                sagas
            });
        }
        let mut all = Vec::with_capacity(SAGAS);
        while let Some(done) = clients.join_next().await {
            all.extend(done.unwrap());
        }
        all.sort_by_key(|(i, _, _)| *i);
        all.into_iter()
            .map(|(_, id, expected)| (id, expected))
            .collect()
    })
}

/// Starts saga `i` through the first of `apis` that answers, retrying with its key.
async fn start_one(http: &reqwest::Client, apis: &[String], i: usize) -> Uuid {
    let (customer, amount, _) = nth(i);
    let body = json!({"customer_id": customer, "amount": amount});
    let key = format!("shutdown-test-{i}");
    let mut attempt = 0;
    wait_for(
        &format!("an orchestrator to start saga {i}"),
        Duration::from_secs(90),
        || {
            attempt += 1;
            let api = apis[(i + attempt) % apis.len()].clone();
            let (body, key) = (body.clone(), key.clone());
            async move {
                let resp = http
                    .post(format!("{api}/v1/sagas/place_order"))
                    .header("idempotency-key", key)
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let answer: Value = resp.json().await.ok()?;
                answer["saga_id"].as_str()?.parse::<Uuid>().ok()
            }
        },
    )
    .await
    .unwrap()
}

/// Waits until `child` exits; returns how long that took from `since` and its status.
async fn wait_exit(
    child: &mut Child,
    since: Instant,
    system: &System,
) -> (Duration, std::process::ExitStatus) {
    let status = wait_for(
        "the orchestrator to exit after SIGTERM",
        exit_deadline() + Duration::from_secs(5),
        || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
    (since.elapsed(), status)
}

/// After SIGTERM the API takes no new connection, even while the process still drains.
async fn assert_refuses_connections(api: &str, system: &System) {
    let address = api.trim_start_matches("http://").to_string();
    wait_for(
        "the API to refuse new connections",
        Duration::from_secs(3),
        || {
            let refused = TcpStream::connect(&address).is_err();
            async move { refused.then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));
}

async fn wait_started(started: &AtomicUsize, n: usize) {
    wait_for("the load to get under way", Duration::from_secs(60), || {
        let done = started.load(Ordering::SeqCst) >= n;
        async move { done.then_some(()) }
    })
    .await
    .unwrap();
}

fn assert_each_key_started_one_saga(sagas: &[(Uuid, &'static str)]) {
    let mut ids: Vec<Uuid> = sagas.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), SAGAS, "one saga per idempotency key");
}

/// Two replicas on PostgreSQL, as the manifests run them: one is SIGTERMed mid-load, the
/// other takes the new starts and the replies the first one handed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_one_of_two_orchestrators_under_load_loses_no_saga() {
    let mut system = System::start(Backend::Postgres).await;
    let deposits = open_accounts(&system).await;
    let port = free_port().unwrap();
    let replica_api = format!("http://127.0.0.1:{port}");
    let _replica = KillOnDrop(system.spawn_orchestrator_replica(port));
    wait_for(
        "the second orchestrator to be ready",
        Duration::from_secs(60),
        || {
            let url = format!("{replica_api}/readyz");
            async move {
                reqwest::get(url)
                    .await
                    .ok()?
                    .status()
                    .is_success()
                    .then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", system.logs()));

    let started = Arc::new(AtomicUsize::new(0));
    let load = load(
        vec![system.api.clone(), replica_api.clone()],
        started.clone(),
    );
    wait_started(&started, SIGTERM_AFTER).await;
    let sent = Instant::now();
    let mut first = system.terminate(Service::Orchestrator);
    assert_refuses_connections(&system.api, &system).await;
    let (took, status) = wait_exit(&mut first, sent, &system).await;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        system.logs()
    );
    assert!(took <= exit_deadline(), "exited {took:?} after SIGTERM");

    let sagas = load.await.unwrap();
    assert_each_key_started_one_saga(&sagas);
    // The API the checks read is the surviving replica's.
    system.api = replica_api;
    assert_outcome(&system, &sagas, &deposits).await;
}

/// A process the test started itself, killed when the test ends however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One replica on SQLite, as the dev overlay runs it: SIGTERMed mid-load, then started
/// again as Kubernetes would; the new process takes over what the old one held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_only_orchestrator_under_load_hands_over_to_its_successor() {
    let mut system = System::start(Backend::Sqlite).await;
    let deposits = open_accounts(&system).await;
    let started = Arc::new(AtomicUsize::new(0));
    let load = load(vec![system.api.clone()], started.clone());
    wait_started(&started, SIGTERM_AFTER).await;
    let sent = Instant::now();
    let mut old = system.terminate(Service::Orchestrator);
    assert_refuses_connections(&system.api, &system).await;
    let (took, status) = wait_exit(&mut old, sent, &system).await;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        system.logs()
    );
    assert!(took <= exit_deadline(), "exited {took:?} after SIGTERM");

    system.spawn(Service::Orchestrator);
    system.wait_ready().await;
    let sagas = load.await.unwrap();
    assert_each_key_started_one_saga(&sagas);
    assert_outcome(&system, &sagas, &deposits).await;
}
