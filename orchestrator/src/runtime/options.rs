//! The settings of an orchestrator process.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long an idempotency key names its saga unless set otherwise: a day, like the windows of
/// the payment APIs that clients retry against.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Settings of an orchestrator process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Options {
    /// NATS server URL.
    pub nats_url: String,
    /// The NKey seed file this process authenticates to NATS with, as the orchestrator user
    /// (see [`saga_protocol::auth`]).
    pub nats_nkey: Option<PathBuf>,
    /// Connect to NATS without credentials; without it, a missing `nats_nkey` is an error.
    pub nats_no_auth: bool,
    /// The CA the NATS server\'s certificate must be signed by; with it, TLS only.
    pub nats_ca: Option<PathBuf>,
    /// `sqlite:<path>` or `postgres://…`.
    pub database_url: String,
    /// What an acknowledged append survives: a process crash, or a power loss too.
    pub durability: saga_sql::Durability,
    /// Directory of `*.toml` saga definitions.
    pub sagas_dir: PathBuf,
    /// Copies of each JetStream stream (1, or 3 in a cluster).
    pub stream_replicas: usize,
    /// How long replies held by a replica that died wait before another replica gets them:
    /// the reply consumer's ack wait and pull expiry (see [`saga_protocol::consumers`]).
    pub failover_after: Duration,
    /// Replies processed concurrently (each saga's replies stay in order).
    pub workers: usize,
    /// An active saga with no new event for this long gets its in-flight commands
    /// published again (same message ids, so nothing applies twice).
    pub republish_after: Duration,
    /// Sagas in flight whose state is kept in memory, so a reply needs no read of the store
    /// (checked by the append's optimistic concurrency; see [`HotSagas`]). 0 turns it off.
    pub hot_sagas: usize,
    /// This replica's name in the partition leases. The same name after a restart takes the
    /// dead process's leases back at once ([`partitions::stable_replica_id`]); none gives a
    /// new name each start ([`partitions::replica_id`]).
    pub replica_id: Option<String>,
    /// A saga still running or compensating this long past its deadline (or past its start,
    /// without one) is flagged overdue (see [`overdue_before`]).
    pub overdue_after: Duration,
    /// The largest reply this process decodes, in bytes; a larger one is dead-lettered with
    /// the reason (see [`saga_protocol::limits`]).
    pub max_message: usize,
    /// How long an idempotency key names its saga: a start with the key within the window
    /// gets that saga (or a conflict, with another input); after it, a new saga.
    pub idempotency_window: Duration,
    /// A snapshot of a saga's state is stored each time its log passes a multiple of this
    /// many events, and a load starts from it (0: no snapshots). A cache: the log decides.
    pub snapshot_every: u64,
    /// A saga completed, compensated or aborted this long ago (and created longer ago than
    /// `idempotency_window`) is moved to the archive (see [`super::retention`]); zero: never.
    pub retention: Duration,
}

/// Events between two snapshots of a saga by default: most sagas end with fewer and are never
/// snapshotted; one that waits, retries or is signalled for long has its replay bounded.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

impl Default for Options {
    fn default() -> Self {
        Options {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_nkey: None,
            nats_no_auth: false,
            nats_ca: None,
            database_url: "sqlite:saga.db".into(),
            durability: saga_sql::Durability::default(),
            sagas_dir: PathBuf::from("sagas"),
            stream_replicas: 1,
            failover_after: saga_protocol::consumers::DEFAULT_FAILOVER_AFTER,
            workers: 32,
            republish_after: Duration::from_secs(30),
            hot_sagas: 1_000,
            replica_id: None,
            overdue_after: Duration::from_secs(300),
            max_message: saga_protocol::limits::DEFAULT_MAX_MESSAGE,
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            retention: super::DEFAULT_RETENTION,
        }
    }
}
