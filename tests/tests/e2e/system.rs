//! A whole system for one test: nats-server, a database backend, and the orchestrator and
//! both participants as separate `saga` processes that can be SIGKILLed and restarted.

use async_nats::jetstream;
use saga_participants::admin;
use saga_protocol::Timestamp;
use saga_testkit::{NatsServer, Postgres, free_port, log_tails, saga_bin, wait_for};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Orchestrator,
    Account,
    Order,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Orchestrator => "orchestrator",
            Service::Account => "account",
            Service::Order => "order",
        }
    }
}

pub const REVIEW_LIMIT: i64 = 1_000_000;

/// Event types that end a saga (until an operator acts on a stuck one).
const ENDS: [&str; 4] = [
    "SagaCompleted",
    "SagaCompensated",
    "SagaStuck",
    "SagaAborted",
];

/// One SIGKILL of a service while sagas ran (see [`System::kill_in_flight`]).
#[derive(Debug, Clone)]
pub struct Kill {
    pub service: Service,
    /// Sagas the read model showed running or compensating just before the signal.
    pub in_flight: Vec<Uuid>,
    /// The wall clock just before the signal was sent, and once the process was reaped:
    /// the orchestrator records events on the same machine's clock.
    pub sent_at: Timestamp,
    pub dead_at: Timestamp,
    /// Once the process was reaped, on the monotonic clock.
    pub dead: Instant,
}

/// How a system is started, beyond its database backend.
pub struct Options {
    /// A saga definition (TOML) to run instead of the repository's `sagas/`.
    pub definition: Option<String>,
    /// Extra environment of every `saga` process (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub env: Vec<(String, String)>,
    /// The orchestrator's `--republish-after`.
    pub republish_after: &'static str,
}

impl Options {
    /// The default start, with `env` added to every `saga` process.
    pub fn with_env(env: &[(&str, &str)]) -> Self {
        Options {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            definition: None,
            env: Vec::new(),
            republish_after: "2s",
        }
    }
}

pub struct System {
    pub nats: NatsServer,
    pub pg: Option<Postgres>,
    dir: tempfile::TempDir,
    pub api: String,
    /// Port of each service's /livez and /readyz (the orchestrator's is its API port).
    health: HashMap<Service, u16>,
    databases: HashMap<Service, String>,
    sagas: std::path::PathBuf,
    processes: HashMap<Service, Child>,
    pub client: async_nats::Client,
    http: reqwest::Client,
    env: Vec<(String, String)>,
    republish_after: &'static str,
}

impl System {
    pub async fn start(backend: Backend) -> System {
        System::start_with(backend, None).await
    }

    /// A system running `definition` (TOML) as its only saga, instead of the repository's.
    pub async fn start_with(backend: Backend, definition: Option<&str>) -> System {
        let options = Options {
            definition: definition.map(str::to_string),
            ..Options::default()
        };
        System::start_with_options(backend, options).await
    }

    pub async fn start_with_options(backend: Backend, options: Options) -> System {
        let Options {
            definition,
            env,
            republish_after,
        } = options;
        let nats = NatsServer::start().expect("nats-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Postgres::start().expect("postgres")),
        };
        let mut databases = HashMap::new();
        for service in [Service::Orchestrator, Service::Account, Service::Order] {
            let url = match &pg {
                None => format!(
                    "sqlite:{}",
                    dir.path().join(format!("{}.db", service.name())).display()
                ),
                Some(pg) => pg.create_database(service.name()).expect("createdb"),
            };
            databases.insert(service, url);
        }
        let sagas = match definition.as_deref() {
            None => saga_testkit::workspace_root().join("sagas"),
            Some(toml) => {
                let dir = dir.path().join("sagas");
                std::fs::create_dir_all(&dir).expect("sagas dir");
                std::fs::write(dir.join("place_order.toml"), toml).expect("definition");
                let catalogue = saga_testkit::workspace_root().join("sagas/participants.toml");
                std::fs::copy(catalogue, dir.join("participants.toml")).expect("catalogue");
                dir
            }
        };
        let port = free_port().expect("port");
        let health = HashMap::from([
            (Service::Orchestrator, port),
            (Service::Account, free_port().expect("port")),
            (Service::Order, free_port().expect("port")),
        ]);
        let client = nats.client().await.expect("nats client");
        let mut system = System {
            nats,
            pg,
            dir,
            api: format!("http://127.0.0.1:{port}"),
            health,
            databases,
            sagas,
            processes: HashMap::new(),
            client,
            http: reqwest::Client::new(),
            env,
            republish_after,
        };
        for service in [Service::Account, Service::Order, Service::Orchestrator] {
            system.spawn(service);
        }
        system.wait_ready().await;
        system
    }

    /// Starts `service` as a `saga` process.
    pub fn spawn(&mut self, service: Service) {
        let port = self.health[&service];
        let child = self.command(service, port, &self.log_path(service));
        self.processes.insert(service, child);
    }

    /// Starts another orchestrator with its API on `port`, sharing the database and NATS, as
    /// a second replica would. The caller owns the process.
    pub fn spawn_orchestrator_replica(&self, port: u16) -> Child {
        let log = self.dir.path().join(format!("orchestrator-{port}.log"));
        self.command(Service::Orchestrator, port, &log)
    }

    fn command(&self, service: Service, port: u16, log: &std::path::Path) -> Child {
        let mut cmd = Command::new(saga_bin().expect("saga binary"));
        match service {
            Service::Orchestrator => {
                cmd.args(["orchestrator"])
                    .args(["--republish-after", self.republish_after, "--sagas"])
                    .arg(&self.sagas);
            }
            Service::Account => {
                cmd.args(["participant", "account", "--catalogue"])
                    .arg(self.sagas.join("participants.toml"));
            }
            Service::Order => {
                cmd.args([
                    "participant",
                    "order",
                    "--review-limit",
                    &REVIEW_LIMIT.to_string(),
                    "--catalogue",
                ])
                .arg(self.sagas.join("participants.toml"));
            }
        }
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--nats",
            &self.nats.url(),
            "--database",
            &self.databases[&service],
        ]);
        cmd.args(self.nats.auth_args(service.name()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        cmd.env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        cmd.spawn().expect("spawn saga")
    }

    /// Sends SIGTERM to `service`, as Kubernetes does to stop a pod, and hands the process
    /// over so the caller can watch it exit.
    pub fn terminate(&mut self, service: Service) -> Child {
        let child = self.processes.remove(&service).expect("a running process");
        sigterm(&child);
        child
    }

    /// Fails the test if a process of the system has exited by itself: an outage of NATS or
    /// the database is to be waited out, never a reason to exit.
    pub fn assert_all_running(&mut self, during: &str) {
        let mut exited = Vec::new();
        for (service, child) in &mut self.processes {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push(format!("{} ({status})", service.name()));
            }
        }
        assert!(
            exited.is_empty(),
            "{} exited {during}\n{}",
            exited.join(", "),
            self.logs()
        );
    }

    /// SIGKILLs `service`: no shutdown, no flush, as a crashed machine.
    pub fn kill(&mut self, service: Service) {
        if let Some(mut child) = self.processes.remove(&service) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs `service` while sagas are in flight, and proves both halves of that: the
    /// read model showed sagas running or compensating just before the signal (the caller
    /// checks with [`System::assert_spanned`], once they ended, that some were still running
    /// when it struck), and the signal is what ended the process.
    pub async fn kill_in_flight(&mut self, service: Service) -> Kill {
        let in_flight = self.in_flight().await;
        if in_flight.is_empty() {
            panic!(
                "no saga was in flight when {} was to be killed (sagas by status: {:?})\n{}",
                service.name(),
                self.status_counts().await,
                self.logs()
            );
        }
        let sent_at = Timestamp::now();
        self.sigkill(service);
        Kill {
            service,
            in_flight,
            sent_at,
            dead_at: Timestamp::now(),
            dead: Instant::now(),
        }
    }

    /// SIGKILLs `service` and checks that the signal is what ended it: a process that had
    /// exited by itself before would make a kill test prove nothing.
    pub fn sigkill(&mut self, service: Service) {
        let mut child = self.processes.remove(&service).expect("a running process");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} had already exited ({status}) when it was to be killed\n{}",
                service.name(),
                self.logs()
            );
        }
        child.kill().expect("send SIGKILL");
        let status = child.wait().expect("reap the killed process");
        assert_eq!(
            status.signal(),
            Some(9),
            "{} ended by {status}, not by SIGKILL",
            service.name()
        );
    }

    /// How many sagas the read model shows in each status; `None` if the API cannot say.
    pub async fn status_counts(&self) -> Option<HashMap<String, u64>> {
        let resp = self
            .http
            .get(format!("{}/v1/overview", self.api))
            .send()
            .await
            .ok()?;
        let overview: Value = resp.json().await.ok()?;
        serde_json::from_value(overview["counts"].clone()).ok()
    }

    /// The sagas the read model shows running or compensating (the first 1,000).
    pub async fn in_flight(&self) -> Vec<Uuid> {
        let url = format!(
            "{}/v1/sagas?status=running,compensating&limit=1000",
            self.api
        );
        let resp = self.http.get(&url).send().await.expect("GET /v1/sagas");
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let body: Value = resp.json().await.expect("json");
        body["sagas"]
            .as_array()
            .expect("a list of sagas")
            .iter()
            .filter_map(|s| s["saga_id"].as_str().and_then(|id| id.parse().ok()))
            .collect()
    }

    /// Once every saga ended: fails unless some of the sagas running just before `kill` were
    /// in flight across it (started before the signal was sent, ended after the process was
    /// reaped), by the orchestrator's `recorded_at` of their first and ending events.
    /// Returns how many were.
    pub async fn assert_spanned(&self, kill: &Kill) -> usize {
        // Timestamps print as fixed-width RFC 3339 UTC, so they compare as strings.
        let (sent, dead) = (kill.sent_at.to_string(), kill.dead_at.to_string());
        let mut spanned = 0;
        for id in &kill.in_flight {
            let events = self.history(*id).await;
            let recorded = |e: &Value| e["recorded_at"].as_str().unwrap_or_default().to_string();
            let started = events.first().map(recorded);
            let ended = events
                .iter()
                .find(|e| ENDS.contains(&e["type"].as_str().unwrap_or_default()))
                .map(recorded);
            if let (Some(started), Some(ended)) = (started, ended)
                && started < sent
                && ended > dead
            {
                spanned += 1;
            }
        }
        assert!(
            spanned > 0,
            "none of the {} sagas running before {} was killed (at {sent}) ended after it died \
             (at {dead}): the kill hit no saga in flight",
            kill.in_flight.len(),
            kill.service.name()
        );
        spanned
    }

    /// Fails if any saga's log holds the effect of one reply twice: a copy of a reply that
    /// the orchestrator recorded again instead of absorbing it.
    pub async fn assert_each_reply_recorded_once(&self, ids: &[Uuid]) {
        const FROM_REPLIES: [&str; 5] = [
            "StepSucceeded",
            "StepRejected",
            "StepCompensated",
            "CommandFailed",
            "LateReplyRecorded",
        ];
        for id in ids {
            let mut seen = std::collections::HashSet::new();
            for e in self.history(*id).await {
                let kind = e["type"].as_str().unwrap_or_default();
                if !FROM_REPLIES.contains(&kind) {
                    continue;
                }
                let key = (
                    kind.to_string(),
                    e["data"]["step"].to_string(),
                    e["data"]["attempt"].to_string(),
                    e["data"]["kind"].to_string(),
                );
                assert!(seen.insert(key.clone()), "saga {id} recorded {key:?} twice");
            }
        }
    }

    /// Waits until the durable `consumer` of `stream` has delivered and had acknowledged
    /// every message, copies included; fails after `deadline`.
    pub async fn wait_drained(&self, stream: &str, consumer: &str, deadline: Duration) {
        let js = jetstream::new(self.client.clone());
        let drained = wait_for(
            &format!("{consumer} to have every message of {stream} delivered and acked"),
            deadline,
            || {
                let js = js.clone();
                async move {
                    let info = js
                        .get_stream(stream)
                        .await
                        .ok()?
                        .consumer_info(consumer)
                        .await
                        .ok()?;
                    (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
                }
            },
        )
        .await;
        if let Err(e) = drained {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Sends SIGHUP to `service` (the orchestrator reloads its definitions on it).
    pub fn hangup(&self, service: Service) {
        let child = &self.processes[&service];
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {} failed", child.id());
    }

    /// Waits until `service`'s process has exited by itself (it refused to start, say), and
    /// returns how it exited.
    pub async fn wait_exit(
        &mut self,
        service: Service,
        deadline: Duration,
    ) -> std::process::ExitStatus {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let child = self.processes.get_mut(&service).expect("a started process");
            if let Some(status) = child.try_wait().expect("wait for the process") {
                self.processes.remove(&service);
                return status;
            }
            if tokio::time::Instant::now() > end {
                panic!(
                    "{} still running after {deadline:?}\n{}",
                    service.name(),
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of `service`'s `GET /metrics`.
    pub async fn metrics(&self, service: Service) -> String {
        // Every service serves /metrics beside its probes (the orchestrator on its API).
        let url = format!("http://127.0.0.1:{}/metrics", self.health[&service]);
        let resp = self.http.get(&url).send().await.expect("GET /metrics");
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        resp.text().await.expect("metrics text")
    }

    /// The whole log of `service` (its standard error).
    pub fn log(&self, service: Service) -> String {
        std::fs::read_to_string(self.log_path(service)).unwrap_or_default()
    }

    fn log_path(&self, service: Service) -> std::path::PathBuf {
        self.dir.path().join(format!("{}.log", service.name()))
    }

    /// The last lines of every process log, replicas included, for failure messages.
    pub fn logs(&self) -> String {
        self.log_tails(15)
    }

    /// The last `lines` lines of each process's log.
    pub fn log_tails(&self, lines: usize) -> String {
        log_tails(self.dir.path(), lines)
    }

    /// Waits until the orchestrator and both participants answer /readyz with 200.
    pub async fn wait_ready(&self) {
        for service in [Service::Account, Service::Order, Service::Orchestrator] {
            self.wait_readyz(service, true, Duration::from_secs(60))
                .await;
        }
    }

    /// The status and JSON report of `service`'s `path` (/livez or /readyz), if it answers.
    pub async fn probe(&self, service: Service, path: &str) -> Option<(u16, Value)> {
        let url = format!("http://127.0.0.1:{}{path}", self.health[&service]);
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// Waits until `service`'s /readyz says ready (200) or not (503); returns its report.
    pub async fn wait_readyz(&self, service: Service, ready: bool, deadline: Duration) -> Value {
        let want = if ready { 200 } else { 503 };
        wait_for(
            &format!("{} /readyz to answer {want}", service.name()),
            deadline,
            || async move {
                let (status, report) = self.probe(service, "/readyz").await?;
                (status == want).then_some(report)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Opens an account with `deposit`, retrying until the account participant answers.
    pub async fn open_account(&self, customer: &str, deposit: i64) {
        let client = self.client.clone();
        wait_for(
            "the account participant to open an account",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                async move { admin::open_account(&client, customer, deposit).await.ok() }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
    }

    /// Starts a place_order saga through the HTTP API under an idempotency key, so a retried
    /// start whose first answer was lost starts nothing twice; `None` when the API cannot
    /// take it now.
    pub async fn try_start_saga(&self, customer: &str, amount: i64, key: &str) -> Option<Uuid> {
        let resp = self
            .http
            .post(format!("{}/v1/sagas/place_order", self.api))
            .header("Idempotency-Key", key)
            .json(&json!({"customer_id": customer, "amount": amount}))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body: Value = resp.json().await.ok()?;
        body["saga_id"].as_str().and_then(|s| s.parse().ok())
    }

    /// Starts a place_order saga through the HTTP API.
    pub async fn start_saga(&self, customer: &str, amount: i64) -> Uuid {
        self.start_named("place_order", customer, amount).await
    }

    /// The directory of saga definitions the orchestrator loads.
    pub fn sagas_dir(&self) -> &std::path::Path {
        &self.sagas
    }

    /// Asks the orchestrator to load new definition versions; returns the HTTP status.
    pub async fn reload(&self) -> u16 {
        let resp = self
            .http
            .post(format!("{}/v1/definitions/reload", self.api))
            .send()
            .await
            .expect("reload");
        resp.status().as_u16()
    }

    /// Starts saga `name` through the HTTP API.
    pub async fn start_named(&self, name: &str, customer: &str, amount: i64) -> Uuid {
        let resp = self
            .http
            .post(format!("{}/v1/sagas/{name}", self.api))
            .json(&json!({"customer_id": customer, "amount": amount}))
            .send()
            .await
            .expect("POST /v1/sagas/place_order");
        assert_eq!(resp.status().as_u16(), 201);
        let body: Value = resp.json().await.expect("json");
        body["saga_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("saga_id")
    }

    /// The saga's event log through the API.
    pub async fn history(&self, id: Uuid) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/sagas/{id}/events", self.api))
            .send()
            .await
            .expect("events");
        resp.json().await.expect("json")
    }

    /// The event types of the saga's log.
    pub async fn event_types(&self, id: Uuid) -> Vec<String> {
        self.history(id)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until the saga's log holds an event of `event_type`.
    pub async fn wait_event(&self, id: Uuid, event_type: &str, deadline: Duration) {
        let found = wait_for(event_type, deadline, || async move {
            self.event_types(id)
                .await
                .iter()
                .any(|t| t == event_type)
                .then_some(())
        })
        .await;
        if let Err(e) = found {
            panic!(
                "{e}: saga {id} has {:?}\n{}",
                self.event_types(id).await,
                self.logs()
            );
        }
    }

    /// An operator action through the API; returns the HTTP status and the body.
    pub async fn operate(&self, id: Uuid, action: &str, reason: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/sagas/{id}/{action}", self.api))
            .json(&json!({"by": "e2e", "reason": reason}))
            .send()
            .await
            .expect("operator action");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Runs the `saga` binary with `args` and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.cli_exit(args);
        assert!(ok, "saga {args:?}: {stderr}");
        stdout
    }

    /// Runs the `saga` binary with `args`: whether it exited 0, its standard output and its
    /// standard error.
    pub fn cli_exit(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(saga_bin().expect("saga binary"))
            .args(args)
            .env("SAGA_SERVER", &self.api)
            .env("SAGA_NATS_URL", self.nats.url())
            .envs(
                self.nats
                    .identities()
                    .nkey("admin")
                    .map(|file| ("SAGA_NATS_NKEY", file)),
            )
            .envs(
                self.nats
                    .identities()
                    .ca()
                    .map(|file| ("SAGA_NATS_CA", file)),
            )
            .output()
            .expect("run saga");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The database URL of `service`.
    pub fn database(&self, service: Service) -> &str {
        &self.databases[&service]
    }

    pub async fn saga(&self, id: Uuid) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/sagas/{id}", self.api))
            .send()
            .await
            .ok()?;
        resp.status().is_success().then_some(())?;
        resp.json().await.ok()
    }

    /// Waits until every saga is completed, compensated or stuck; returns their statuses.
    pub async fn wait_terminal(&self, ids: &[Uuid], deadline: Duration) -> HashMap<Uuid, String> {
        let end = tokio::time::Instant::now() + deadline;
        let mut done = HashMap::new();
        loop {
            for id in ids
                .iter()
                .filter(|id| !done.contains_key(*id))
                .copied()
                .collect::<Vec<_>>()
            {
                let Some(saga) = self.saga(id).await else {
                    continue;
                };
                let status = saga["status"].as_str().unwrap_or_default().to_string();
                if matches!(
                    status.as_str(),
                    "completed" | "compensated" | "stuck" | "aborted"
                ) {
                    done.insert(id, status);
                }
            }
            if done.len() == ids.len() {
                return done;
            }
            if tokio::time::Instant::now() > end {
                let mut unfinished = String::new();
                for id in ids.iter().filter(|id| !done.contains_key(*id)).take(5) {
                    let types = self.event_types(*id).await;
                    let tail = &types[types.len().saturating_sub(6)..];
                    unfinished
                        .push_str(&format!("  {id}: {} events, last {tail:?}\n", types.len()));
                }
                panic!(
                    "after {deadline:?}, {} of {} sagas ended; some unfinished:\n{unfinished}\
                     consumers:\n{}{}",
                    done.len(),
                    ids.len(),
                    self.consumers().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The delivery state of every durable consumer, a line each, for failure messages.
    pub async fn consumers(&self) -> String {
        let js = jetstream::new(self.client.clone());
        let mut out = String::new();
        for stream in [
            saga_protocol::subjects::COMMANDS_STREAM,
            saga_protocol::subjects::REPLIES_STREAM,
        ] {
            let mut stream = match js.get_stream(stream).await {
                Ok(s) => s,
                Err(e) => {
                    out.push_str(&format!("  {stream}: {e}\n"));
                    continue;
                }
            };
            let name = stream.cached_info().config.name.clone();
            let last = stream
                .info()
                .await
                .map(|i| i.state.last_sequence)
                .unwrap_or(0);
            let mut names = stream.consumer_names();
            while let Some(Ok(consumer)) = futures::StreamExt::next(&mut names).await {
                let line = match stream.consumer_info(&consumer).await {
                    Ok(i) => format!(
                        "delivered {} of {last}, ack floor {}, {} pending, {} unacked, \
                         {} redelivered, {} pulls waiting",
                        i.delivered.stream_sequence,
                        i.ack_floor.stream_sequence,
                        i.num_pending,
                        i.num_ack_pending,
                        i.num_redelivered,
                        i.num_waiting
                    ),
                    Err(e) => e.to_string(),
                };
                out.push_str(&format!("  {name}/{consumer}: {line}\n"));
            }
        }
        out
    }

    /// Checks money conservation: for every account, available + reserved == deposited, and
    /// reserved == the sum of its approved orders. Returns the orders by status.
    pub async fn assert_conserved(
        &self,
        deposits: &HashMap<String, i64>,
    ) -> HashMap<String, usize> {
        let balances = admin::balances(&self.client).await.expect("balances");
        let orders = admin::orders(&self.client).await.expect("orders");
        let mut approved: HashMap<String, i64> = HashMap::new();
        let mut by_status: HashMap<String, usize> = HashMap::new();
        for o in &orders {
            *by_status.entry(o.status.clone()).or_default() += 1;
            if o.status == "approved" {
                *approved.entry(o.customer_id.clone()).or_default() += o.amount;
            }
        }
        assert_eq!(balances.len(), deposits.len(), "one account per customer");
        for b in balances {
            let deposited = deposits[&b.customer_id];
            assert_eq!(b.deposited, deposited, "{}: deposited", b.customer_id);
            assert_eq!(
                b.available + b.reserved,
                deposited,
                "{}: available + reserved",
                b.customer_id
            );
            assert_eq!(
                b.reserved,
                approved.get(&b.customer_id).copied().unwrap_or(0),
                "{}: reserved equals the approved orders",
                b.customer_id
            );
        }
        by_status
    }
}

/// Sends SIGTERM to `child`: the signal Kubernetes sends before the grace period runs out.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {} failed", child.id());
}

impl Drop for System {
    fn drop(&mut self) {
        for service in [Service::Orchestrator, Service::Account, Service::Order] {
            self.kill(service);
        }
        // A failing test leaves its whole logs and stores behind: the failure message holds
        // only the last lines.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "kept for the failure: process logs and databases in {}, nats-server's log \
                 and store in {}",
                self.dir.path().display(),
                self.nats.keep_files().display()
            );
        }
    }
}
