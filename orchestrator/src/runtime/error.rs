use uuid::Uuid;

/// Why the runtime could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no saga definition named `{0}`")]
    UnknownSaga(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("idempotency key `{key}` was already used by saga {saga_id} with a different input")]
    IdempotencyConflict { key: String, saga_id: Uuid },
    #[error("saga {0} not found")]
    NotFound(Uuid),
    #[error("saga {saga_id}: {reason}")]
    Corrupt { saga_id: Uuid, reason: String },
    #[error(
        "saga `{name}` version {version} is retired: it can no longer be started (the history \
         of its sagas stays readable); start a newer version"
    )]
    Retired { name: String, version: u32 },
    /// The loaded file of a version differs from the one stored under its (name, version).
    #[error("{0}")]
    DefinitionChanged(String),
    #[error(
        "saga `{name}` version {version} has {count} saga(s) in flight (running, compensating \
         or stuck): it can be retired once they have ended"
    )]
    VersionInFlight {
        name: String,
        version: u32,
        count: u64,
    },
    #[error("no stored definition `{name}` version {version}")]
    UnknownVersion { name: String, version: u32 },
    /// A stored definition this build cannot validate any more. Not transient.
    #[error("the stored definition `{name}` version {version} cannot be used: {reason}")]
    BadStoredDefinition {
        name: String,
        version: u32,
        reason: String,
    },
    #[error("this orchestrator is already running: Orchestrator::run takes its timers once")]
    AlreadyRunning,
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Transport(#[from] crate::transport::Error),
    #[error(transparent)]
    Leases(#[from] super::partitions::Error),
}

impl Error {
    /// Whether retrying later may succeed (database or NATS briefly unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Transport(e) => e.is_transient(),
            Error::Leases(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
