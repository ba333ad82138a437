//! `saga bench` settings: the load, the system under test, and the JetStream settings.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Sagas to run (measured; warm-up sagas come on top). Default 2000, or no limit with
    /// --duration.
    #[arg(short = 'n', long = "sagas")]
    pub sagas: Option<u64>,
    /// Sagas in flight at once (each client starts the next saga when its saga has ended).
    #[arg(short = 'k', long = "in-flight", default_value_t = 50)]
    pub in_flight: usize,
    /// HTTP connections to the API at most (start requests beyond wait for one): K clients
    /// share them as a real client's connection pool would. Default: K, at most 256.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Share of sagas rejected at approve_order (amount above the review limit), so their
    /// compensations are part of the load.
    #[arg(long, default_value_t = 0.1)]
    pub fail_rate: f64,
    /// Stop starting sagas after this long (e.g. 30s); the ones in flight still finish.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Sagas run before the measurement starts (connections, caches, JIT of the database).
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// Database of the orchestrator and the participants.
    #[arg(long, value_enum, default_value_t = Db::Sqlite)]
    pub db: Db,
    /// Run the orchestrator and the participants as separate `saga` processes (per-process
    /// CPU and memory) or as tasks inside the bench process.
    #[arg(long, value_enum, default_value_t = Mode::Processes)]
    pub mode: Mode,
    /// Orchestrator replicas (each with its own API port; they share the reply consumer).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// JetStream storage of the protocol streams (and of the floor's streams).
    #[arg(long, value_enum, default_value_t = Storage::File)]
    pub js_storage: Storage,
    /// JetStream fsync: `default` (nats-server's, every 2 minutes, or `always` with
    /// `--durability power`), `always` (every write), or an interval such as `100ms`.
    #[arg(long, default_value = "default")]
    pub js_sync: String,
    /// What an acknowledged write survives, in the system and the floor alike: `process` (a
    /// crash of any process) or `power` (a power loss too: SQLite syncs at every commit and
    /// JetStream at every write).
    #[arg(long, default_value = "process")]
    pub durability: saga_sql::Durability,
    /// Commands each participant handles at once.
    #[arg(long, default_value_t = 64)]
    pub participant_concurrency: usize,
    /// Sagas stored before the run (terminal, written straight into the event store), to
    /// measure with a large store.
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
    /// Sagas of the transport floor (default: as many as --sagas, at least 10000, so it runs
    /// long enough to measure).
    #[arg(long)]
    pub floor_sagas: Option<u64>,
    /// Skip the raw JetStream floor.
    #[arg(long)]
    pub no_floor: bool,
    /// Longest a saga may take before it counts as an error.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub saga_timeout: Duration,
    /// Use a running system instead of starting one: the orchestrator API(s), comma-separated.
    /// Needs --nats too; per-process CPU and memory are then not measured.
    #[arg(long, value_delimiter = ',')]
    pub server: Vec<String>,
    /// NATS of the running system (with --server).
    #[arg(long)]
    pub nats: Option<String>,
    /// With --server: the NKey seed to use its NATS with. The bench opens accounts (admin
    /// subjects) and, unless --no-floor, creates and uses streams of its own for the floor,
    /// so it needs an identity allowed both.
    #[arg(long = "nats-nkey", env = "SAGA_NATS_NKEY")]
    pub nats_nkey: Option<std::path::PathBuf>,
    /// With --server: use its NATS without authentication.
    #[arg(long = "nats-no-auth")]
    pub nats_no_auth: bool,
    /// With --server: the CA its NATS server's certificate is signed by (TLS only).
    #[arg(long = "nats-ca", env = "SAGA_NATS_CA")]
    pub nats_ca: Option<std::path::PathBuf>,
    /// Directory of saga definitions for the orchestrator started by the bench.
    #[arg(long, default_value = "sagas")]
    pub sagas_dir: PathBuf,
    /// Keep the temporary directory (databases, NATS store, process logs) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Print only the JSON line (the command line's `--output json`): no progress, no table.
    #[arg(skip)]
    pub json_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    pub fn as_str(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Processes,
    InProcess,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Processes => "processes",
            Mode::InProcess => "in-process",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    File,
    Memory,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }
}

impl BenchArgs {
    /// The number of measured sagas: `--sagas`, else 2000 without `--duration`, else no limit.
    pub fn count(&self) -> u64 {
        match (self.sagas, self.duration) {
            (Some(n), _) => n,
            (None, None) => 2000,
            (None, Some(_)) => u64::MAX,
        }
    }

    /// HTTP connections the driver opens at most.
    pub fn connections(&self) -> usize {
        self.connections.unwrap_or(self.in_flight.min(256)).max(1)
    }

    /// Checks the settings that clap cannot.
    /// nats-server's `sync_interval`: none for its default, `always` under `--durability
    /// power`.
    pub fn js_sync_interval(&self) -> Option<String> {
        match (self.js_sync.as_str(), self.durability) {
            ("default", saga_sql::Durability::Power) => Some("always".into()),
            ("default", saga_sql::Durability::Process) => None,
            (other, _) => Some(other.to_string()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(format!(
                "--fail-rate must be between 0 and 1, not {}",
                self.fail_rate
            ));
        }
        if self.in_flight == 0 {
            return Err("--in-flight must be at least 1".into());
        }
        if self.replicas == 0 {
            return Err("--replicas must be at least 1".into());
        }
        if self.sagas.is_none() && self.duration.is_none() && self.count() == 0 {
            return Err("nothing to run".into());
        }
        if !self.server.is_empty() && self.nats.is_none() {
            return Err("--server needs --nats (the running system's NATS)".into());
        }
        if self.durability == saga_sql::Durability::Power
            && !matches!(self.js_sync.as_str(), "default" | "always")
        {
            return Err(format!(
                "--durability power syncs JetStream at every write: leave --js-sync out, not `{}`",
                self.js_sync
            ));
        }
        match self.js_sync.as_str() {
            "default" | "always" => Ok(()),
            other => humantime::parse_duration(other)
                .map(|_| ())
                .map_err(|e| format!("--js-sync `{other}`: {e} (use default, always or e.g. 1s)")),
        }
    }
}
