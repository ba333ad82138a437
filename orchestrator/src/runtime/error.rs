use uuid::Uuid;

/// Why the runtime declined a request: it names something that is not there, or asks for
/// what the saga's or the definition's state does not allow. Never transient: asking again
/// the same way gets the same answer (the API answers 4xx).
#[derive(Debug, thiserror::Error)]
pub enum Declined {
    /// No definition of that name (and version, when one was asked for) can be started.
    #[error("no saga definition named `{name}`{}", of_version(*.version))]
    UnknownDefinition { name: String, version: Option<u32> },
    /// The start input does not fit the definition (a missing or mistyped field).
    #[error("{0}")]
    InvalidInput(saga_core::Rejection),
    #[error(
        "idempotency key `{key}` was already used by saga {saga_id} with a different input \
         (that saga's input has digest {stored}, this request's {requested})"
    )]
    IdempotencyConflict {
        key: String,
        saga_id: Uuid,
        stored: String,
        requested: String,
    },
    #[error("saga {0} not found")]
    NotFound(Uuid),
    #[error(
        "saga `{name}` version {version} is retired: it can no longer be started (the history \
         of its sagas stays readable); start a newer version"
    )]
    Retired { name: String, version: u32 },
    /// The loaded file of a version differs from the one stored under its (name, version):
    /// where, as `file:line:column` at its `version` key.
    #[error("{0}")]
    DefinitionChanged(saga_core::DefinitionError),
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
}

fn of_version(version: Option<u32>) -> String {
    version.map(|v| format!(" version {v}")).unwrap_or_default()
}

/// Why the runtime could not do what it was asked: it declined ([`Declined`]), or the
/// infrastructure under it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Declined(#[from] Declined),
    /// A saga's stored log cannot be used (a bug or a manual edit). Not transient.
    #[error("saga {saga_id}: {reason}")]
    Corrupt { saga_id: Uuid, reason: String },
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
}

impl Error {
    /// Whether retrying later may succeed (database or NATS briefly unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Transport(e) => e.is_transient(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
