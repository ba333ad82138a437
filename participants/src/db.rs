//! Opening a database by URL: `sqlite:<path>` (created when missing) or `postgres://…`,
//! with the right embedded migrations applied.
//!
//! Both the orchestrator's event store and the participants use this, through sqlx's `Any`
//! driver, so one SQL text serves both backends.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::time::Duration;

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
    #[error("unsupported database URL `{0}`: use sqlite:<path> or postgres://user@host/db")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects to `url` with at most `max_connections`, and applies `sqlite` or `postgres`
/// migrations depending on the backend.
///
/// SQLite files are created when missing and put in WAL mode, so readers do not block the
/// writer; `synchronous = NORMAL` keeps commits durable across a process crash (kill -9).
pub async fn connect(
    url: &str,
    max_connections: u32,
    sqlite: &Migrator,
    postgres: &Migrator,
) -> Result<(AnyPool, Backend), Error> {
    install_default_drivers();
    let backend = Backend::of(url).ok_or_else(|| Error::UnsupportedUrl(url.to_string()))?;
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
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                }
                Ok(())
            })
        });
    let pool = options.connect(&url).await.map_err(Error::Connect)?;
    migrator.run(&pool).await?;
    Ok((pool, backend))
}
