//! The one loop: load → fold → decide → append → act.
//!
//! Every input (a start request, a participant's reply) goes through the same steps:
//! the saga's events are loaded and folded into its state, the pure core decides the new
//! events, they are appended with optimistic concurrency on the saga's version, and only
//! then are the commands they decided published. A crash between append and publish is
//! harmless: [`Orchestrator::recover`] re-publishes the in-flight commands of every active
//! saga with the same message ids, at start-up and periodically for sagas that went quiet.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use saga_orchestrator::runtime::{Options, Orchestrator};
//! let orchestrator = Orchestrator::open(&Options::default()).await?;
//! let started = orchestrator
//!     .start("place_order", serde_json::json!({"customer_id": "c-1", "amount": 500}), None)
//!     .await?;
//! println!("started {}", started.saga_id);
//! # Ok(()) }
//! ```

mod definitions;
mod error;
mod handle;
mod hot;
mod observe;
mod options;
mod overdue;
mod recovery;
mod registry;
mod replies;
pub mod retention;
mod run;
mod snapshots;
mod start;
mod timers;
pub mod watermark;
mod workers;

pub use definitions::{DefinitionInfo, IN_FLIGHT, LoadError};
pub use error::{Declined, Error, Result};
pub use handle::decode_all;
pub use hot::HotSagas;
pub use options::{DEFAULT_SNAPSHOT_EVERY, Options};
pub use overdue::{overdue_before, overdue_statuses};
pub use registry::{CATALOGUE_FILE, Entry, Registry};
pub use replies::SHUTDOWN_GRACE;
pub use retention::DEFAULT_RETENTION;
pub use start::input_digest;
pub use timers::Timers;

use crate::clock::{Clock, SystemClock};
use crate::partitions;
use crate::store::{EventStore, SagaRecord, SqlStore, StoredEvent};
use crate::transport::{JetStream, Transport};
use saga_core::SagaState;
use std::time::Duration;
use uuid::Uuid;

/// The result of a start request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub saga_id: Uuid,
    /// False when the idempotency key named a saga that already existed.
    pub created: bool,
}

/// A saga as loaded from the store: its record, its log, and the state they fold to.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub record: SagaRecord,
    pub events: Vec<StoredEvent>,
    pub state: SagaState,
    /// When it was moved to the archive, if it was ([`Orchestrator::read`]).
    pub archived_at: Option<saga_protocol::Timestamp>,
}

/// What handling an input did.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// New events were recorded (and their commands published, their timers armed).
    Applied,
    /// Nothing changed: a reply handled before, or a tick with nothing due.
    Unchanged,
    /// The input cannot apply to the saga (a reply to an unknown saga, an operator action
    /// on a saga that is not stuck).
    Refused(Refusal),
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown saga {0}")]
    UnknownSaga(Uuid),
    #[error("saga {saga_id} runs definition `{name}`, which is neither loaded nor stored")]
    UnknownDefinition { saga_id: Uuid, name: String },
    #[error(transparent)]
    Rejected(#[from] saga_core::Rejection),
}

/// The orchestrator: a cheap-to-clone handle on the store, the transport, the clock and the
/// definitions.
#[derive(Clone)]
pub struct Orchestrator<S = SqlStore, T = JetStream> {
    store: S,
    transport: T,
    /// Where every decision reads the time ([`SystemClock`] unless set with
    /// [`Orchestrator::with_clock`]).
    clock: std::sync::Arc<dyn Clock>,
    /// Replaced whole on reload; readers clone the cheap `Registry` out.
    registry: std::sync::Arc<std::sync::RwLock<Registry>>,
    options: Options,
    timers: Timers,
    /// The wheel behind `timers`, taken by [`Orchestrator::run`].
    wheel: std::sync::Arc<std::sync::Mutex<Option<timers::TimerWheel>>>,
    metrics: std::sync::Arc<observe::Metrics>,
    hot: std::sync::Arc<HotSagas>,
    /// The partitions this replica owns: it fires their sagas' timers (see [`partitions`]).
    ownership: partitions::Ownership,
    /// Whether the reply consumer is pulling now (read by `/readyz`).
    replies_pulling: saga_protocol::inbound::Pulling,
}

impl Orchestrator<SqlStore, JetStream> {
    /// Loads the definitions, opens the database and connects to NATS, waiting for as long
    /// as the database or NATS is away; fails only on what waiting cannot cure (invalid
    /// definitions, a bad URL, refused credentials, conflicting streams).
    ///
    /// # Cancel safety
    /// Dropping the future stops the waiting (on shutdown, say).
    pub async fn open(options: &Options) -> Result<Self, OpenError> {
        let registry = Registry::load_dir(&options.sagas_dir).map_err(OpenError::Definitions)?;
        // SQLite serves reads only besides its one writer, and with the hot state replies
        // read nothing: a few connections (each with its own page cache) are plenty.
        let connections = match saga_sql::Backend::of(&options.database_url) {
            Some(saga_sql::Backend::Sqlite) => 4,
            _ => 16,
        };
        // A database that is not up yet (restarting, a pod starting beside this one) is
        // waited out; bad settings and refused credentials are not.
        let store = saga_protocol::retry::transient(
            "open the event store",
            || SqlStore::open_with(&options.database_url, connections, options.durability),
            crate::store::Error::is_transient,
        )
        .await
        .map_err(|e| OpenError::Store(e.into()))?;
        let credentials = saga_protocol::auth::Credentials::from_settings(
            options.nats_nkey.as_deref(),
            options.nats_no_auth,
        )
        .map_err(|e| OpenError::Store(crate::transport::Error::from(e).into()))?
        .with_ca(options.nats_ca.clone());
        let transport =
            JetStream::connect(&options.nats_url, options.stream_replicas, &credentials)
                .await
                .map_err(|e| OpenError::Store(e.into()))?;
        let orchestrator = Orchestrator::new(store, transport, registry, options.clone());
        // Before anything runs: a file that changes a stored version stops the start here;
        // the database going away meanwhile is waited out like at its opening.
        saga_protocol::retry::transient(
            "store the saga definitions",
            || orchestrator.record_definitions(),
            LoadError::is_transient,
        )
        .await?;
        Ok(orchestrator)
    }
}

/// Why an orchestrator could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid saga definitions:\n{0}")]
    Definitions(saga_core::Errors),
    #[error(transparent)]
    Store(Error),
}

impl<S: EventStore, T: Transport> Orchestrator<S, T> {
    pub fn new(store: S, transport: T, registry: Registry, options: Options) -> Self {
        let (timers, wheel) = timers::timers();
        let hot = std::sync::Arc::new(HotSagas::new(options.hot_sagas));
        Orchestrator {
            hot,
            store,
            transport,
            clock: std::sync::Arc::new(SystemClock),
            registry: std::sync::Arc::new(std::sync::RwLock::new(registry)),
            options,
            timers,
            wheel: std::sync::Arc::new(std::sync::Mutex::new(Some(wheel))),
            metrics: std::sync::Arc::new(observe::Metrics::new()),
            ownership: partitions::Ownership::default(),
            replies_pulling: saga_protocol::inbound::Pulling::default(),
        }
    }

    /// The definitions loaded now.
    pub fn registry(&self) -> Registry {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The same orchestrator reading the time from `clock` (a [`crate::clock::TokioClock`]
    /// in tests on a paused clock). Set it before [`Orchestrator::run`] and before any start.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = std::sync::Arc::new(clock);
        self
    }

    /// The clock this orchestrator reads.
    pub fn clock(&self) -> std::sync::Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The time now, by this orchestrator's clock.
    pub fn now(&self) -> saga_protocol::Timestamp {
        self.clock.now()
    }

    /// Whether this replica's reply consumer is pulling now: false before [`Orchestrator::run`]
    /// has set it up, while NATS is away, and after it stopped.
    pub fn replies_pulling(&self) -> bool {
        self.replies_pulling.get()
    }

    /// The sagas in flight whose state this process keeps in memory.
    pub fn hot_sagas(&self) -> &HotSagas {
        &self.hot
    }

    /// The timer handle: arms an `Input::Tick` for a saga.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// The failover bound in effect: `failover_after`, at least what JetStream accepts.
    pub(crate) fn failover_bound(&self) -> Duration {
        self.options
            .failover_after
            .max(saga_protocol::consumers::MIN_FAILOVER_AFTER)
    }

    /// Counts a message sent to the dead-letter stream by this process.
    pub(crate) fn dead_lettered(&self, consumer: &'static str) {
        self.metrics
            .dead_letters
            .add(1, &[opentelemetry::KeyValue::new("consumer", consumer)]);
    }
}
