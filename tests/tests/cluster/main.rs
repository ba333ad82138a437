//! Scale out: three orchestrators and two instances of each participant, all `saga`
//! processes, on one PostgreSQL and a three-node JetStream cluster with R3 streams. One
//! orchestrator is SIGKILLed in the middle of a batch, then one NATS node is SIGKILLed and
//! started again: every saga still ends, nothing is applied twice, money is conserved, and no
//! saga waits longer than the failover bound between two of its events.
//!
//! The clients keep at most `MAX_IN_FLIGHT` sagas running, so a slow machine slows the run
//! down instead of timing steps out. Process logs of a failed run are kept in
//! `$TMPDIR/saga-cluster-failed-{pid}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clients;
mod script;

/// The tests of this binary run one at a time: each starts a whole cluster.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use clients::{count_in_flight, lease_view, start_saga};
use saga_participants::admin;
use saga_testkit::{NatsCluster, Postgres, free_port, log_tails, saga_bin, wait_for};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// The order participants' `--review-limit`: every tenth saga orders above it.
const REVIEW_LIMIT: i64 = 1_000_000;
/// Sagas of the run.
const SAGAS: usize = 2_000;
/// Clients starting sagas at once.
const CLIENTS: usize = 50;
/// The clients hold back while this many sagas run: the scenario is about failures, not about
/// overloading a debug build on two cores (where steps would time out and sagas compensate).
const MAX_IN_FLIGHT: usize = 150;
const ORCHESTRATORS: usize = 3;
const INSTANCES: usize = 2;
/// Customers the sagas are spread over (7, so the rejected sagas spread too).
const CUSTOMERS: usize = 7;
/// Each customer's deposit: more than every saga of the run could reserve at once.
const DEPOSIT: i64 = 1_000_000_000_000;
/// Every tenth saga orders above the review limit, so it is compensated.
const REJECT_EVERY: usize = 10;
/// The orchestrators' `--republish-after`: the sweep that re-publishes a quiet saga's commands
/// (which a replica killed between its append and its publish never sent).
const REPUBLISH_AFTER: Duration = Duration::from_secs(10);
/// How long a saga may wait between two of its events when a process dies: a step's
/// timeout (10 s in `place_order`) plus the failover bound (`--failover-after`, 5 s by
/// default: a reply or command held by the killed process, a pull request held by the killed
/// node, or the killed replica's partition leases, with its timers, go to another after it),
/// plus 5 s for the new owner's poll of due timers (at most 0.5 s) and a loaded machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(10 + 5 + 5);

struct Cluster {
    nats: NatsCluster,
    _pg: Postgres,
    dir: tempfile::TempDir,
    databases: HashMap<&'static str, String>,
    /// API port and process of each orchestrator (`None` once killed).
    orchestrators: Vec<(u16, Option<Child>)>,
    participants: Vec<Child>,
    client: async_nats::Client,
    http: reqwest::Client,
}

impl Cluster {
    async fn start() -> Cluster {
        let nats = NatsCluster::start(3).expect("nats cluster");
        let pg = Postgres::start().expect("postgres");
        let mut databases = HashMap::new();
        for name in ["orchestrator", "account", "order"] {
            databases.insert(name, pg.create_database(name).expect("createdb"));
        }
        let client = nats.client().await.expect("nats client");
        let mut cluster = Cluster {
            nats,
            _pg: pg,
            dir: tempfile::Builder::new()
                .prefix("saga-cluster-")
                .tempdir()
                .expect("temp dir"),
            databases,
            orchestrators: Vec::new(),
            participants: Vec::new(),
            client,
            http: reqwest::Client::new(),
        };
        for instance in 0..INSTANCES {
            for kind in ["account", "order"] {
                let child = cluster.spawn(&format!("{kind}-{instance}"), kind, None);
                cluster.participants.push(child);
            }
        }
        for index in 0..ORCHESTRATORS {
            let port = free_port().expect("port");
            let child = cluster.spawn(&format!("orchestrator-{index}"), "orchestrator", Some(port));
            cluster.orchestrators.push((port, Some(child)));
        }
        for (port, _) in &cluster.orchestrators {
            let url = format!("http://127.0.0.1:{port}/readyz");
            let http = cluster.http.clone();
            wait_for(
                "an orchestrator to be ready",
                Duration::from_secs(60),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let resp = http.get(url).send().await.ok()?;
                        resp.status().is_success().then_some(())
                    }
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        }
        cluster
    }

    fn spawn(&self, name: &str, service: &str, port: Option<u16>) -> Child {
        let mut cmd = Command::new(saga_bin().expect("saga binary"));
        let sagas = saga_testkit::workspace_root().join("sagas");
        match service {
            "orchestrator" => {
                let port = port.expect("an API port");
                cmd.arg("orchestrator")
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .args([
                        "--republish-after",
                        &format!("{}s", REPUBLISH_AFTER.as_secs()),
                    ])
                    .arg("--sagas")
                    .arg(&sagas);
            }
            kind => {
                cmd.args(["participant", kind, "--catalogue"])
                    .arg(sagas.join("participants.toml"))
                    .args(["--review-limit", &REVIEW_LIMIT.to_string()]);
            }
        }
        cmd.args(["--nats", &self.nats.urls(), "--stream-replicas", "3"])
            .args(self.nats.auth_args(service))
            .args(["--database", &self.databases[service]]);
        let log =
            std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log file");
        cmd.env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn saga")
    }

    /// The API of every orchestrator still running.
    fn apis(&self) -> Vec<String> {
        self.orchestrators
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| format!("http://127.0.0.1:{port}"))
            .collect()
    }

    fn kill_orchestrator(&mut self, index: usize) {
        if let Some(mut child) = self.orchestrators[index].1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of every process log, for failure messages.
    fn logs(&self) -> String {
        log_tails(self.dir.path(), 12)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.orchestrators.len() {
            self.kill_orchestrator(index);
        }
        for child in &mut self.participants {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed run keeps the processes' whole logs for a look afterwards.
        if std::thread::panicking() {
            let kept =
                std::env::temp_dir().join(format!("saga-cluster-failed-{}", std::process::id()));
            if std::fs::create_dir_all(&kept).is_ok() {
                for entry in std::fs::read_dir(self.dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
                }
                eprintln!("process logs kept in {}", kept.display());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_survive_an_orchestrator_and_a_nats_node_killed_with_three_replicas_each() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start().await;
    let mut deposits = HashMap::new();
    for c in 0..CUSTOMERS {
        let customer = format!("c-{c}");
        let client = cluster.client.clone();
        let name = customer.clone();
        wait_for("an account to open", Duration::from_secs(60), || {
            let (client, name) = (client.clone(), name.clone());
            async move { admin::open_account(&client, &name, DEPOSIT).await.ok() }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        deposits.insert(customer, DEPOSIT);
    }

    // Starts run from several clients while the failures happen, holding back while
    // `MAX_IN_FLIGHT` sagas are running, as the read model counts them.
    let started = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    let apis = Arc::new(std::sync::RwLock::new(cluster.apis()));
    let next = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let gate = tokio::spawn(count_in_flight(
        cluster.http.clone(),
        apis.clone(),
        in_flight.clone(),
    ));
    for _ in 0..CLIENTS {
        let (http, apis, next, started, in_flight) = (
            cluster.http.clone(),
            apis.clone(),
            next.clone(),
            started.clone(),
            in_flight.clone(),
        );
        clients.spawn(async move {
            let mut ids = Vec::new();
            loop {
                while in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= SAGAS {
                    return ids;
                }
                in_flight.fetch_add(1, Ordering::SeqCst);
                let live = apis.read().expect("apis").clone();
                let id = start_saga(&http, &live, n).await.expect("a saga started");
                started.fetch_add(1, Ordering::SeqCst);
                ids.push((n, id));
            }
        });
    }

    let at = |count: usize| {
        let started = started.clone();
        wait_for("sagas to be started", Duration::from_secs(300), move || {
            let started = started.clone();
            async move { (started.load(Ordering::SeqCst) >= count).then_some(()) }
        })
    };
    at(SAGAS / 3).await.expect("a third started");
    eprintln!(
        "killing orchestrator 0 at {} started",
        started.load(Ordering::SeqCst)
    );
    cluster.kill_orchestrator(0);
    *apis.write().expect("apis") = cluster.apis();
    at(2 * SAGAS / 3).await.expect("two thirds started");
    eprintln!(
        "killing nats node 1 at {} started",
        started.load(Ordering::SeqCst)
    );
    cluster.nats.kill(1);
    at(5 * SAGAS / 6).await.expect("five sixths started");
    eprintln!(
        "restarting nats node 1 at {} started",
        started.load(Ordering::SeqCst)
    );
    cluster.nats.restart(1).expect("nats node back");
    eprintln!("nats node 1 is back");

    let mut ids = Vec::with_capacity(SAGAS);
    while let Some(joined) = clients.join_next().await {
        ids.extend(joined.expect("client"));
    }
    gate.abort();
    assert_eq!(ids.len(), SAGAS);
    eprintln!("all {SAGAS} started");

    // Every saga ends, as the read model counts them through a live orchestrator.
    let distinct: std::collections::HashSet<Uuid> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), SAGAS, "one saga per start");
    let live = cluster.apis();
    let http = cluster.http.clone();
    let overview = format!("{}/v1/overview", live[0]);
    let ended = |counts: &HashMap<String, u64>| {
        ["completed", "compensated", "stuck", "aborted"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let last_counts = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let counts = wait_for("every saga to end", Duration::from_secs(300), || {
        let (http, overview, last) = (http.clone(), overview.clone(), last_counts.clone());
        async move {
            let resp = http
                .get(overview)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            let body: Value = resp.json().await.ok()?;
            let counts: HashMap<String, u64> =
                serde_json::from_value(body["counts"].clone()).ok()?;
            *last.lock().expect("counts") = counts.clone();
            (ended(&counts) == SAGAS as u64).then_some(counts)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", last_counts.lock(), cluster.logs()));
    // Every saga ended, none stuck. A step that got no reply within its timeout (while the
    // cluster moved a stream's leader, or a killed replica's messages waited out their ack
    // wait) is an unknown outcome, so its saga may compensate as well: only the rejected ones
    // are certain to.
    let rejected = ids
        .iter()
        .filter(|(n, _)| n.is_multiple_of(REJECT_EVERY))
        .count();
    let count = |s: &str| usize::try_from(counts.get(s).copied().unwrap_or(0)).unwrap_or(0);
    eprintln!("sagas by status: {counts:?} ({rejected} rejected on purpose)");
    assert_eq!(count("stuck"), 0, "{counts:?}");
    assert_eq!(
        count("completed") + count("compensated"),
        SAGAS,
        "{counts:?}"
    );
    assert!(count("compensated") >= rejected, "{counts:?}");

    // Nothing applied twice and nothing left behind: at most one order per saga (one per
    // effect key; a saga compensated before its order was created has a tombstone, not an
    // order), none left pending, the approved ones exactly the completed sagas, and the money
    // adds up.
    let balances = admin::balances(&cluster.client).await.expect("balances");
    let orders = admin::orders(&cluster.client).await.expect("orders");
    let keys: std::collections::HashSet<&str> =
        orders.iter().map(|o| o.effect_key.as_str()).collect();
    assert_eq!(keys.len(), orders.len(), "one order per effect key");
    assert!(orders.len() <= SAGAS, "{} orders", orders.len());
    let pending: Vec<_> = orders.iter().filter(|o| o.status == "pending").collect();
    assert!(pending.is_empty(), "orders left pending: {pending:?}");
    let mut approved: HashMap<String, i64> = HashMap::new();
    for o in orders.iter().filter(|o| o.status == "approved") {
        *approved.entry(o.customer_id.clone()).or_default() += o.amount;
    }
    assert_eq!(
        orders.iter().filter(|o| o.status == "approved").count(),
        count("completed")
    );
    assert_eq!(balances.len(), CUSTOMERS);
    for b in &balances {
        let deposited = deposits[&b.customer_id];
        assert_eq!(b.available + b.reserved, deposited, "{}", b.customer_id);
        assert_eq!(
            b.reserved,
            approved.get(&b.customer_id).copied().unwrap_or(0),
            "{}: reserved equals the approved orders",
            b.customer_id
        );
    }

    // The killed replica's partition leases went to the two live ones: every partition is
    // leased, by one of them.
    let js = async_nats::jetstream::new(cluster.client.clone());
    let leases = wait_for(
        "the live replicas to lease every partition",
        Duration::from_secs(30),
        || {
            let js = js.clone();
            async move {
                let (members, owners, leased) = lease_view(&js).await?;
                (members == ORCHESTRATORS - 1 && owners.len() == ORCHESTRATORS - 1 && leased == 64)
                    .then_some((members, owners))
            }
        },
    )
    .await;
    let leases = match leases {
        Ok(leases) => leases,
        Err(e) => panic!("{e}: {:?}\n{}", lease_view(&js).await, cluster.logs()),
    };
    eprintln!(
        "partition leases: {} members, owners {:?}",
        leases.0, leases.1
    );
    // And the live replicas' own gauges say the same.
    let mut owned = 0.0;
    for api in cluster.apis() {
        let text = cluster
            .http
            .get(format!("{api}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        owned += text
            .lines()
            .filter(|l| l.starts_with("saga_partitions_owned"))
            .find_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no saga_partitions_owned on {api}/metrics"));
    }
    assert!(
        (owned - 64.0).abs() < 0.5,
        "{owned} partitions owned, by the replicas' gauges"
    );

    // No saga waited longer than the failover bound between two of its events.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&cluster.databases["orchestrator"])
        .await
        .expect("orchestrator database");
    let longest: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(recorded_at - previous), 0) FROM (SELECT recorded_at, \
         LAG(recorded_at) OVER (PARTITION BY saga_id ORDER BY sequence) AS previous \
         FROM saga_events) gaps WHERE previous IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("longest wait");
    eprintln!("longest wait between two events of one saga: {longest} ms");
    assert!(
        u128::try_from(longest).unwrap_or(0) <= FAILOVER_BOUND.as_millis(),
        "a saga waited {longest} ms between two events, more than {FAILOVER_BOUND:?}"
    );
}
