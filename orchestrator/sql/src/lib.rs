//! Opening a database by URL: `sqlite:<path>` (created when missing) or `postgres://…`,
//! with the right embedded migrations applied, and the one table of database errors worth
//! trying again ([`is_transient`]).
//!
//! [`group_commit`] is the loop of a task that commits the writes waiting at one moment in
//! one transaction.
//!
//! Both the orchestrator's event store and the participants use this, through sqlx's `Any`
//! driver, so one SQL text serves both backends; it sits below both, so neither imports the
//! other for it.
//!
//! ```
//! use saga_sql::Backend;
//! assert_eq!(Backend::of("sqlite:orchestrator.db"), Some(Backend::Sqlite));
//! assert_eq!(Backend::of("postgres://saga@db/orchestrator"), Some(Backend::Postgres));
//! assert_eq!(Backend::of("mysql://saga@db/orchestrator"), None);
//! ```

pub mod group_commit;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::time::Duration;

/// `$first, $first+1, …`: `count` bind placeholders for an `IN (…)` list or a row of
/// values. Only these are spliced into SQL text; the values themselves are bound.
///
/// ```
/// assert_eq!(saga_sql::placeholders(3, 2), "$3, $4");
/// assert_eq!(saga_sql::placeholders(1, 0), "");
/// ```
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an acknowledged write survives: the choice each deployment states (see the README's
/// Durability section).
///
/// ```
/// use saga_sql::Durability;
/// assert_eq!("power".parse::<Durability>(), Ok(Durability::Power));
/// assert_eq!(Durability::default().to_string(), "process");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// A crash of any process (kill -9): SQLite commits to its write-ahead log without
    /// waiting for the disk (`synchronous = NORMAL`).
    #[default]
    Process,
    /// A power loss too: SQLite syncs its write-ahead log at every commit
    /// (`synchronous = FULL`). PostgreSQL is run with its own durable defaults in both modes
    /// (`fsync`, `synchronous_commit`).
    Power,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Process => "process",
            Durability::Power => "power",
        })
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "process" => Ok(Durability::Process),
            "power" => Ok(Durability::Power),
            other => Err(format!(
                "`{other}` is not a durability: use `process` (survives a crash of any process) \
                 or `power` (survives a power loss too)"
            )),
        }
    }
}

/// Which SQL backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, or `None` for an unsupported scheme.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Holds the URL's scheme only: the rest may carry a password.
    #[error("unsupported database URL scheme `{0}:`: use sqlite:<path> or postgres://user@host/db")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Error {
    /// Whether opening may succeed if tried again later: the database was unreachable or
    /// refused connections for a while (starting, shutting down, too many clients). A bad URL,
    /// refused credentials or a migration that does not apply are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect(e) | Error::Migrate(sqlx::migrate::MigrateError::Execute(e)) => {
                is_transient(e)
            }
            _ => false,
        }
    }
}

/// Whether a database call that failed with `error` may succeed if tried again later: the
/// database was unreachable, the pool was exhausted, or it refused the transaction for load
/// reasons (busy, deadlock, shutting down). The one table both the event store and the
/// participants use.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs are five characters; SQLite codes are numbers (extended result codes,
/// whose low byte is the primary code), so the two cannot be confused.
fn transient_code(code: &str) -> bool {
    if let Ok(sqlite) = code.parse::<i32>()
        && code.len() < 5
    {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended variants.
        return matches!(sqlite & 0xff, 5 | 6);
    }
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (e.g. too many connections)
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
        )
}

/// The error for `url` of no supported backend, naming only its scheme.
fn unsupported(url: &str) -> Error {
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    Error::UnsupportedUrl(scheme.to_string())
}

/// Connects to `url` with at most `max_connections`, and applies `sqlite` or `postgres`
/// migrations depending on the backend.
///
/// SQLite files are created when missing and put in WAL mode, so readers do not block the
/// writer; `durability` sets `synchronous` (NORMAL: commits survive a process crash, kill -9;
/// FULL: a power loss too).
pub async fn connect(
    url: &str,
    max_connections: u32,
    durability: Durability,
    sqlite: &Migrator,
    postgres: &Migrator,
) -> Result<(AnyPool, Backend), Error> {
    install_default_drivers();
    let backend = Backend::of(url).ok_or_else(|| unsupported(url))?;
    let (url, migrator) = match backend {
        Backend::Sqlite if url.contains('?') || url.contains(":memory:") => {
            (url.to_string(), sqlite)
        }
        Backend::Sqlite => (format!("{url}?mode=rwc"), sqlite),
        Backend::Postgres => (url.to_string(), postgres),
    };
    let options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(match durability {
                        Durability::Process => "PRAGMA synchronous = NORMAL",
                        Durability::Power => "PRAGMA synchronous = FULL",
                    })
                    .await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        });
    let pool = options.connect(&url).await.map_err(Error::Connect)?;
    migrator.run(&pool).await?;
    Ok((pool, backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_database_codes() {
        assert!(transient_code("5"));
        assert!(transient_code("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(transient_code("262")); // SQLITE_LOCKED_SHAREDCACHE
        assert!(!transient_code("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(transient_code("08006"));
        assert!(transient_code("40001"));
        assert!(transient_code("57P01"));
        assert!(!transient_code("23505")); // unique_violation
        assert!(!transient_code("42P01")); // undefined_table
    }

    #[test]
    fn an_unreachable_database_is_transient_and_a_bad_url_is_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(Error::Connect(refused).is_transient());
        assert!(!Error::UnsupportedUrl("mysql".into()).is_transient());
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn a_bad_url_is_named_by_its_scheme_never_its_password() {
        let refused = unsupported("mysql://app:hunter2@db/x").to_string();
        assert!(refused.contains("`mysql:`"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
    }
}
