//! The system under test: nats-server, the databases, the orchestrator replicas and the two
//! participants, started fresh in a temporary directory (or a running system, with `--server`).
//!
//! With `--mode processes` the orchestrator and participants are the `saga` binary itself
//! (`current_exe`), so each has its own CPU time and memory in `/proc`. With
//! `--mode in-process` they run as tasks on a runtime of their own (threads named
//! [`SYSTEM_THREAD`]), apart from the bench's driver, so the bench can still tell their CPU
//! time from the driver's.

use super::options::{BenchArgs, Db, Mode, Storage};
use crate::Error;
use async_nats::jetstream;
use saga_orchestrator::runtime::{Options as OrchestratorOptions, Orchestrator};
use saga_protocol::streams;
use saga_testkit::{HARNESS, NatsOptions, NatsServer, Postgres, free_port};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Thread name of the in-process system's runtime.
pub const SYSTEM_THREAD: &str = "saga-system";
/// Largest order amount approved; the bench's failing sagas order more than this.
pub const REVIEW_LIMIT: i64 = 1_000_000;

/// A process the bench measures.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub pid: u32,
}

pub struct System {
    pub nats_url: String,
    /// Base URLs of the orchestrator APIs.
    pub servers: Vec<String>,
    /// Processes to measure (empty for a running system).
    pub measured: Vec<Measured>,
    pub in_process: bool,
    pub dir: Option<tempfile::TempDir>,
    children: Vec<(String, Child)>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    nats: Option<NatsServer>,
    postgres: Option<Postgres>,
    /// With --server, how to use its NATS.
    credentials: saga_protocol::auth::Credentials,
}

impl System {
    /// A client of the system's NATS as identity `name` (`admin`, or the [`HARNESS`] the floor
    /// runs as) of the nats-server this bench started; with --server, as `--nats-nkey` says.
    pub async fn nats_client(&self, name: &str) -> Result<async_nats::Client, Error> {
        if let Some(nats) = &self.nats {
            return Ok(nats.identities().connect(&self.nats_url, name).await?);
        }
        let role = saga_protocol::auth::Role::Admin;
        Ok(saga_protocol::servers::connect_once(
            &self.nats_url,
            "saga-bench",
            &role,
            &self.credentials,
        )
        .await?)
    }

    /// Starts everything `args` asks for and waits until the API and both participants answer.
    pub async fn start(args: &BenchArgs) -> Result<Self, Error> {
        if !args.server.is_empty() {
            return Ok(System {
                nats_url: args.nats.clone().unwrap_or_default(),
                servers: args.server.clone(),
                measured: Vec::new(),
                in_process: false,
                dir: None,
                children: Vec::new(),
                runtime: None,
                stop: CancellationToken::new(),
                nats: None,
                postgres: None,
                credentials: saga_protocol::auth::Credentials::from_settings(
                    args.nats_nkey.as_deref(),
                    args.nats_no_auth,
                )?
                .with_ca(args.nats_ca.clone()),
            });
        }
        let dir = tempfile::Builder::new().prefix("saga-bench-").tempdir()?;
        let root = dir.path().to_path_buf();
        let mut system = System {
            nats_url: String::new(),
            servers: Vec::new(),
            measured: Vec::new(),
            in_process: args.mode == Mode::InProcess,
            dir: Some(dir),
            children: Vec::new(),
            runtime: None,
            stop: CancellationToken::new(),
            nats: None,
            postgres: None,
            credentials: saga_protocol::auth::Credentials::none(),
        };
        let nats = start_nats(&root, args)?;
        system.nats_url = nats.url();
        system.measured.push(Measured {
            name: "nats-server".into(),
            pid: nats.pid().unwrap_or(0),
        });
        system.nats = Some(nats);
        create_streams(&system.nats_client(HARNESS).await?, args.js_storage).await?;

        let databases = match args.db {
            Db::Sqlite => ["orchestrator", "account", "order"]
                .map(|n| format!("sqlite:{}", root.join(format!("{n}.db")).display())),
            Db::Postgres => {
                let pg = tokio::task::block_in_place(Postgres::start_durable)?;
                let mut urls = Vec::new();
                for n in ["orchestrator", "account", "order"] {
                    urls.push(tokio::task::block_in_place(|| pg.create_database(n))?);
                }
                if let Some(pid) = pg.pid() {
                    system.measured.push(Measured {
                        name: "postgres".into(),
                        pid,
                    });
                }
                system.postgres = Some(pg);
                [urls[0].clone(), urls[1].clone(), urls[2].clone()]
            }
        };
        let [orchestrator_db, account_db, order_db] = databases;
        if args.preload > 0 {
            super::preload::run(&orchestrator_db, &args.sagas_dir, args.preload).await?;
        }
        let ports = (0..args.replicas)
            .map(|_| free_port())
            .collect::<Result<Vec<_>, _>>()?;
        system.servers = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        match args.mode {
            Mode::Processes => {
                system.spawn(
                    &root,
                    "account",
                    &["participant", "account"],
                    &account_db,
                    args,
                )?;
                system.spawn(&root, "order", &["participant", "order"], &order_db, args)?;
                for (i, port) in ports.iter().enumerate() {
                    let listen = format!("127.0.0.1:{port}");
                    let sagas = args.sagas_dir.display().to_string();
                    let name = if args.replicas == 1 {
                        "orchestrator".to_string()
                    } else {
                        format!("orchestrator-{}", i + 1)
                    };
                    system.spawn(
                        &root,
                        &name,
                        &["orchestrator", "--listen", &listen, "--sagas", &sagas],
                        &orchestrator_db,
                        args,
                    )?;
                }
            }
            Mode::InProcess => {
                system.start_in_process(&ports, &orchestrator_db, &account_db, &order_db, args)?;
                system.measured.push(Measured {
                    name: "bench (system threads)".into(),
                    pid: std::process::id(),
                });
            }
        }
        system.wait_ready().await?;
        Ok(system)
    }

    fn spawn(
        &mut self,
        root: &Path,
        name: &str,
        command: &[&str],
        database: &str,
        args: &BenchArgs,
    ) -> Result<(), Error> {
        let exe = std::env::current_exe()?;
        let log = std::fs::File::create(root.join(format!("{name}.log")))?;
        let identity = match command {
            ["participant", kind, ..] => kind,
            _ => "orchestrator",
        };
        let mut cmd = Command::new(exe);
        cmd.args(command)
            .args(["--nats", &self.nats_url, "--database", database])
            .args(["--durability", &args.durability.to_string()])
            .args(
                self.nats
                    .as_ref()
                    .map(|n| n.auth_args(identity))
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if command[0] == "participant" {
            cmd.args([
                "--concurrency",
                &args.participant_concurrency.to_string(),
                "--review-limit",
                &REVIEW_LIMIT.to_string(),
            ]);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `saga {}`: {e}", command.join(" ")))?;
        self.measured.push(Measured {
            name: name.to_string(),
            pid: child.id().unwrap_or(0),
        });
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn start_in_process(
        &mut self,
        ports: &[u16],
        orchestrator_db: &str,
        account_db: &str,
        order_db: &str,
        args: &BenchArgs,
    ) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(SYSTEM_THREAD)
            .enable_all()
            .build()?;
        for (kind, db) in [
            (saga_participants::Kind::Account, account_db),
            (saga_participants::Kind::Order, order_db),
        ] {
            let options = saga_participants::Options {
                nats_url: self.nats_url.clone(),
                nats_nkey: self
                    .nats
                    .as_ref()
                    .and_then(|n| n.identities().nkey(kind.as_str())),
                nats_ca: self.nats.as_ref().and_then(|n| n.identities().ca()),
                database_url: db.to_string(),
                durability: args.durability,
                review_limit: REVIEW_LIMIT,
                concurrency: args.participant_concurrency,
                stream_replicas: 1,
                listen: None,
                ..saga_participants::Options::default()
            };
            let stop = self.stop.clone().cancelled_owned();
            runtime.spawn(async move {
                if let Err(e) = saga_participants::run(kind, options, stop).await {
                    eprintln!("{kind} participant: {e}");
                }
            });
        }
        for port in ports {
            let options = OrchestratorOptions {
                nats_url: self.nats_url.clone(),
                nats_nkey: self
                    .nats
                    .as_ref()
                    .and_then(|n| n.identities().nkey("orchestrator")),
                nats_ca: self.nats.as_ref().and_then(|n| n.identities().ca()),
                database_url: orchestrator_db.to_string(),
                durability: args.durability,
                sagas_dir: args.sagas_dir.clone(),
                ..OrchestratorOptions::default()
            };
            let stop = self.stop.clone();
            let listen = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            runtime.spawn(async move {
                let result = async {
                    let api = saga_orchestrator::api::Server::bind(
                        listen,
                        saga_orchestrator::api::Tokens::none(),
                        &stop,
                    )
                    .await?;
                    let o = Orchestrator::open(&options).await?;
                    saga_orchestrator::api::serve(o, api, stop).await?;
                    Ok::<(), Error>(())
                }
                .await;
                if let Err(e) = result {
                    eprintln!("orchestrator: {e}");
                }
            });
        }
        self.runtime = Some(runtime);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let http = reqwest::Client::new();
        let client = self.nats_client("admin").await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        for server in self.servers.clone() {
            let url = format!("{server}/readyz");
            while !http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                self.check_alive(deadline)?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while saga_participants::admin::orders(&client).await.is_err() {
            self.check_alive(deadline)?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while saga_participants::admin::balances(&client).await.is_err() {
            self.check_alive(deadline)?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Fails when a process died or the deadline passed, with the tail of its log.
    fn check_alive(&mut self, deadline: Instant) -> Result<(), Error> {
        let mut exited = None;
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(format!("{name} exited ({status}) during start-up"));
            }
        }
        if let Some(exited) = exited {
            return Err(format!("{exited}\n{}", self.logs()).into());
        }
        if Instant::now() > deadline {
            return Err(format!("the system was not ready within 60s\n{}", self.logs()).into());
        }
        Ok(())
    }

    /// The last lines of every process log.
    pub fn logs(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let mut out = String::new();
        for m in &self.measured {
            let path = dir.path().join(format!("{}.log", m.name));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} ---\n", path.display()));
            for line in &lines[lines.len().saturating_sub(10)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Stops everything; with `keep`, leaves the directory and returns its path.
    pub async fn stop(mut self, keep: bool) -> Option<PathBuf> {
        self.stop.cancel();
        if let Some(rt) = self.runtime.take() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rt.shutdown_background();
        }
        for (_, child) in &mut self.children {
            let _ = child.kill().await;
        }
        if let (Some(pg), Some(dir), true) = (&mut self.postgres, &self.dir, keep) {
            // The cluster has a directory of its own; the kept one links to it.
            let _ = std::os::unix::fs::symlink(pg.keep_files(), dir.path().join("pg"));
        }
        drop(self.postgres.take());
        drop(self.nats.take());
        let dir = self.dir.take()?;
        keep.then(|| dir.keep())
    }
}

/// nats-server with JetStream under `root`, on a free port, with `--js-sync` applied. Its
/// largest payload is raised to 64 MB so the admin listing of every order after a long run
/// fits in one reply.
fn start_nats(root: &Path, args: &BenchArgs) -> Result<NatsServer, Error> {
    let options = NatsOptions {
        dir: Some(root.to_path_buf()),
        max_payload: Some("64MB".into()),
        sync_interval: args.js_sync_interval(),
        ..NatsOptions::default()
    };
    Ok(tokio::task::block_in_place(|| NatsServer::launch(options))?)
}

/// Creates the protocol streams with the chosen storage before any process does: processes
/// leave existing streams as they are.
async fn create_streams(client: &async_nats::Client, storage: Storage) -> Result<(), Error> {
    let js = jetstream::new(client.clone());
    for mut config in streams::configs(1) {
        config.storage = storage_type(storage);
        js.get_or_create_stream(config).await?;
    }
    Ok(())
}

pub fn storage_type(storage: Storage) -> jetstream::stream::StorageType {
    match storage {
        Storage::File => jetstream::stream::StorageType::File,
        Storage::Memory => jetstream::stream::StorageType::Memory,
    }
}
