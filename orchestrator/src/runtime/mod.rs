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
mod hot;
mod observe;
mod overdue;
pub mod partitions;
mod recovery;
mod registry;
mod replies;
mod run;
mod timers;
pub mod watermark;

pub use definitions::{DefinitionInfo, IN_FLIGHT, LoadError};
pub use error::{Error, Result};
pub use hot::HotSagas;
pub use overdue::{overdue_before, overdue_statuses};
pub use registry::{CATALOGUE_FILE, Entry, Registry};
pub use replies::SHUTDOWN_GRACE;
pub use timers::Timers;

use crate::store::{
    Created, EventStore, NewEvent, NewSaga, SagaRecord, SqlStore, StoredEvent, Summary,
};
use crate::transport::Transport;
use saga_core::{
    Action, EVENT_SCHEMA_VERSION, Event, Input, Occurred, OperatorAction, SagaState, Status,
};
use saga_protocol::{ReplyEnvelope, Timestamp};
use saga_telemetry::saga::SagaTrace;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// Settings of an orchestrator process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Options {
    /// NATS server URL.
    pub nats_url: String,
    /// `sqlite:<path>` or `postgres://…`.
    pub database_url: String,
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nats_url: "nats://127.0.0.1:4222".into(),
            database_url: "sqlite:saga.db".into(),
            sagas_dir: PathBuf::from("sagas"),
            stream_replicas: 1,
            failover_after: saga_protocol::consumers::DEFAULT_FAILOVER_AFTER,
            workers: 32,
            republish_after: Duration::from_secs(30),
            hot_sagas: 1_000,
            replica_id: None,
            overdue_after: Duration::from_secs(300),
        }
    }
}

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

/// The orchestrator: a cheap-to-clone handle on the store, the transport and the definitions.
#[derive(Clone)]
pub struct Orchestrator<S = SqlStore> {
    store: S,
    transport: Transport,
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

/// What the read model records of `state` next to its events.
fn summary(state: &SagaState) -> Summary {
    Summary {
        status: state.status.as_str().to_string(),
        due_at: state.timers().into_iter().min(),
    }
}

/// Appends that lose a race are decided again this many times before giving up.
const MAX_CONFLICT_RETRIES: usize = 8;

impl Orchestrator<SqlStore> {
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
            || SqlStore::open(&options.database_url, connections),
            crate::store::Error::is_transient,
        )
        .await
        .map_err(|e| OpenError::Store(e.into()))?;
        let transport = Transport::connect(&options.nats_url, options.stream_replicas)
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

impl<S: EventStore> Orchestrator<S> {
    pub fn new(store: S, transport: Transport, registry: Registry, options: Options) -> Self {
        let (timers, wheel) = timers::timers();
        let hot = std::sync::Arc::new(HotSagas::new(options.hot_sagas));
        Orchestrator {
            hot,
            store,
            transport,
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

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether this replica's reply consumer is pulling now: false before [`Orchestrator::run`]
    /// has set it up, while NATS is away, and after it stopped.
    pub fn replies_pulling(&self) -> bool {
        self.replies_pulling.get()
    }

    /// Starts the newest version of saga `name` with `input`. With an idempotency key
    /// already used for the same input, returns that saga instead; with a different input,
    /// fails with a conflict.
    pub async fn start(
        &self,
        name: &str,
        input: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<Started> {
        self.start_version(name, None, input, idempotency_key).await
    }

    /// [`Orchestrator::start`] on version `version` of the definition (the newest if `None`).
    pub async fn start_version(
        &self,
        name: &str,
        version: Option<u32>,
        input: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<Started> {
        let registry = self.registry();
        let entry = match version {
            Some(v) => registry.startable(name, v),
            None => registry.latest_entry(name),
        }
        .ok_or_else(|| {
            Error::UnknownSaga(match version {
                Some(v) => format!("{name}` version `{v}"),
                None => name.to_string(),
            })
        })?;
        // Stored, with the same content, and not retired.
        self.check_startable(entry).await?;
        let def = &entry.definition;
        let saga_id = Uuid::new_v4();
        let now = Timestamp::now();
        let state = SagaState::new(saga_id);
        let input_digest = input.to_string();
        // A new trace for the saga, stored with it: every later span, in any process and
        // after any restart, joins it.
        let trace = SagaTrace::start(&def.name);
        let start = Input::Start {
            input,
            trace_context: trace.as_ref().map(SagaTrace::traceparent),
        };
        let events = saga_core::decide(def, &state, start, now)
            .map_err(|r| Error::InvalidInput(r.to_string()))?;
        let state = events.iter().fold(state, saga_core::evolve);
        let saga = NewSaga {
            saga_id,
            name: def.name.clone(),
            definition_version: def.version,
            idempotency_key: idempotency_key.clone(),
            input_digest: input_digest.clone(),
            tags: crate::store::input_tags(&state.input),
            deadline_at: state.deadline_at,
        };
        let created = self
            .store
            .create(
                saga,
                events.iter().map(to_new_event).collect(),
                summary(&state),
                now,
            )
            .await?;
        match created {
            Created::New => {
                observe::observe(
                    &self.metrics,
                    observe::Decision {
                        name: &def.name,
                        version: def.version,
                        before: SagaState::new(saga_id),
                        events: &events,
                        was_stuck: false,
                        now,
                    },
                );
                let actions = saga_core::actions(&state, &events);
                self.hot.put(hot::Hot {
                    state,
                    was_stuck: false,
                });
                self.act(saga_id, &actions, trace.as_ref()).await?;
                Ok(Started {
                    saga_id,
                    created: true,
                })
            }
            Created::Existing(record) if record.input_digest == input_digest => Ok(Started {
                saga_id: record.saga_id,
                created: false,
            }),
            Created::Existing(record) => Err(Error::IdempotencyConflict {
                key: idempotency_key.unwrap_or_default(),
                saga_id: record.saga_id,
            }),
        }
    }

    /// Loads a saga and folds its events.
    pub async fn load(&self, saga_id: Uuid) -> Result<Loaded> {
        let (record, events) = self
            .store
            .load(saga_id)
            .await?
            .ok_or(Error::NotFound(saga_id))?;
        let occurred = decode_all(saga_id, &events)?;
        let state = SagaState::replay(saga_id, &occurred);
        Ok(Loaded {
            record,
            events,
            state,
        })
    }

    /// Records a participant's reply and acts on what it decides.
    pub async fn handle_reply(&self, reply: &ReplyEnvelope) -> Result<Handled> {
        self.handle(reply.saga_id, Input::Reply(reply.clone()))
            .await
    }

    /// Records an operator's action on a saga and acts on what it decides.
    pub async fn operate(&self, saga_id: Uuid, action: OperatorAction) -> Result<Handled> {
        self.handle(saga_id, Input::Operator(action)).await
    }

    /// The one loop for an existing saga: load, fold, decide, append, act. A lost append race
    /// (another writer moved the saga on) loads the new state and decides again.
    ///
    /// The state comes from the hot cache when the saga is there ([`HotSagas`]); only an
    /// append can confirm it, so a decision from a cached state that appends nothing is made
    /// again on the state loaded from the store.
    pub async fn handle(&self, saga_id: Uuid, input: Input) -> Result<Handled> {
        let mut cached = self.hot.take(saga_id);
        for _ in 0..MAX_CONFLICT_RETRIES {
            let from_cache = cached.is_some();
            let hot = match cached.take() {
                Some(hot) => hot,
                None => match self.load(saga_id).await {
                    Err(Error::NotFound(id)) => {
                        return Ok(Handled::Refused(Refusal::UnknownSaga(id)));
                    }
                    Err(e) => return Err(e),
                    Ok(loaded) => hot::Hot {
                        was_stuck: loaded.events.iter().any(|e| e.event_type == "SagaStuck"),
                        state: loaded.state,
                    },
                },
            };
            // A version no file holds any more is restored from the store.
            let registry = self
                .registry_for(&hot.state.name, hot.state.definition_version)
                .await?
                .unwrap_or_default();
            let now = Timestamp::now();
            let Some(def) = registry.get(&hot.state.name, hot.state.definition_version) else {
                // Nothing can be decided without it: the saga becomes Stuck with the reason,
                // visibly, instead of running for good with every input refused; the input
                // is refused too (a reply goes to the dead-letter stream with the reason).
                let refusal = Refusal::UnknownDefinition {
                    saga_id,
                    name: hot.state.name.clone(),
                };
                let events = match saga_core::stall(&hot.state, refusal.to_string(), now) {
                    Ok(events) if !events.is_empty() => events,
                    _ if from_cache => continue,
                    _ => return Ok(Handled::Refused(refusal)),
                };
                tracing::error!(%saga_id, reason = %refusal, "saga stuck: its definition is missing");
                match self.commit(saga_id, hot, events, now).await? {
                    true => return Ok(Handled::Refused(refusal)),
                    false => continue,
                }
            };
            let events = match saga_core::decide(def, &hot.state, input.clone(), now) {
                Ok(events) if events.is_empty() && from_cache => continue,
                Err(_) if from_cache => continue,
                Ok(events) if events.is_empty() => {
                    self.hot.put(hot);
                    return Ok(Handled::Unchanged);
                }
                Ok(events) => events,
                Err(rejection) => return Ok(Handled::Refused(rejection.into())),
            };
            if self.commit(saga_id, hot, events, now).await? {
                return Ok(Handled::Applied);
            }
        }
        self.hot.forget(saga_id);
        Err(Error::Corrupt {
            saga_id,
            reason: format!("lost {MAX_CONFLICT_RETRIES} append races in a row"),
        })
    }

    /// Appends `events` decided from `hot` (at `now`), then observes and acts on them. False
    /// when the append lost a race: the caller loads the saga again and decides again.
    async fn commit(
        &self,
        saga_id: Uuid,
        hot: hot::Hot,
        events: Vec<Occurred>,
        now: Timestamp,
    ) -> Result<bool> {
        let before = hot.state.clone();
        let state = events.iter().fold(hot.state, saga_core::evolve);
        let appended = self
            .store
            .append(
                saga_id,
                before.version,
                events.iter().map(to_new_event).collect(),
                summary(&state),
                now,
            )
            .await;
        match appended {
            Ok(_) => {}
            Err(crate::store::Error::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        observe::observe(
            &self.metrics,
            observe::Decision {
                name: &before.name,
                version: before.definition_version,
                before: before.clone(),
                events: &events,
                was_stuck: hot.was_stuck,
                now,
            },
        );
        let trace = state.trace_context.as_deref().and_then(SagaTrace::parse);
        let actions = saga_core::actions(&state, &events);
        let was_stuck = hot.was_stuck || state.status == Status::Stuck;
        self.hot.put(hot::Hot { state, was_stuck });
        self.act(saga_id, &actions, trace.as_ref()).await?;
        Ok(true)
    }

    /// Publishes the commands of `actions` (in the saga's `trace`) and arms their timers.
    /// Finishing needs no I/O: the status is stored with the events.
    async fn act(
        &self,
        saga_id: Uuid,
        actions: &[Action],
        trace: Option<&SagaTrace>,
    ) -> Result<()> {
        let mut commands = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                Action::SendCommand(c) | Action::SendCompensation(c) => commands.push(c),
                Action::ScheduleTimer { at } => self.timers.schedule(saga_id, *at),
                Action::Finish { .. } => {}
            }
        }
        self.transport.publish_all(&commands, trace).await?;
        Ok(())
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

/// The stored form of a core event.
fn to_new_event(occurred: &Occurred) -> NewEvent {
    NewEvent {
        event_type: occurred.event.type_name().to_string(),
        schema_version: EVENT_SCHEMA_VERSION,
        payload: occurred.event.to_payload(),
        occurred_at: occurred.at,
    }
}

/// Decodes a saga's stored log into core events.
pub fn decode_all(saga_id: Uuid, events: &[StoredEvent]) -> Result<Vec<Occurred>> {
    events
        .iter()
        .map(|e| {
            Event::decode(&e.event_type, e.schema_version, &e.payload)
                .map(|event| Occurred {
                    at: e.occurred_at,
                    event,
                })
                .map_err(|err| Error::Corrupt {
                    saga_id,
                    reason: err.to_string(),
                })
        })
        .collect()
}
