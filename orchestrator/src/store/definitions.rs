//! Definition versions stored beside the sagas that run them (table `saga_definitions`).
//!
//! A saga runs on the exact definition it started with, whatever later happens to the files,
//! so every (name, version) the orchestrator loads is kept here with its TOML source and its
//! content hash. A row is written once and never changed, except `retired_at`, set when an
//! operator retires a version with no saga in flight; a retired version cannot be started, and
//! its row stays, so the history of its sagas stays readable.
//!
//! ```
//! use saga_orchestrator::store::{DefinitionStore, MemoryStore, NewDefinition};
//! use saga_protocol::Timestamp;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> saga_orchestrator::store::Result<()> {
//! let store = MemoryStore::new();
//! let v1 = NewDefinition {
//!     name: "order".into(),
//!     version: 1,
//!     hash: "5e1f…".into(),
//!     source: "[saga]\nname = \"order\"\nversion = 1\n".into(),
//!     stored_at: Timestamp(1_000),
//! };
//! assert_eq!(store.put_definition(v1.clone()).await?.hash, "5e1f…");
//! // Written once: a second put with other content answers with what is stored.
//! let other = NewDefinition { hash: "77aa…".into(), ..v1 };
//! assert_eq!(store.put_definition(other).await?.hash, "5e1f…");
//! # Ok(()) }
//! ```

use super::{Error, Result};
use saga_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row};

/// A definition version to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDefinition {
    pub name: String,
    pub version: u32,
    /// The content hash of the validated definition (`saga_core::Definition::hash`).
    pub hash: String,
    /// The TOML text it was validated from.
    pub source: String,
    pub stored_at: Timestamp,
}

/// A stored definition version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDefinition {
    pub name: String,
    pub version: u32,
    pub hash: String,
    pub source: String,
    pub stored_at: Timestamp,
    /// When an operator retired it; a retired version cannot be started.
    pub retired_at: Option<Timestamp>,
}

/// A stored definition version with how many sagas of it are in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionUse {
    pub definition: StoredDefinition,
    /// Sagas of this name and version whose status is one of those asked about.
    pub in_flight: u64,
}

/// What [`EventStore::retire_definition`](super::EventStore::retire_definition) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    /// Retired now, or already before (then `retired_at` is the first retirement's).
    Retired(StoredDefinition),
    /// Nothing changed: this many sagas of the version are still in flight.
    InFlight(u64),
    /// No such version is stored.
    Unknown,
}

const COLUMNS: &str = "name, version, hash, source, stored_at, retired_at";

/// `$first, $first+1, …`: one placeholder per status.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn put(pool: &AnyPool, d: NewDefinition) -> Result<StoredDefinition> {
    // Written once: a row already there is kept as it is, and returned for the caller to
    // compare (two replicas starting together both get the first one's row).
    sqlx::query(
        "INSERT INTO saga_definitions (name, version, hash, source, stored_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING",
    )
    .bind(&d.name)
    .bind(i64::from(d.version))
    .bind(&d.hash)
    .bind(&d.source)
    .bind(d.stored_at.millis())
    .execute(pool)
    .await
    .map_err(Error::Database)?;
    get(pool, &d.name, d.version).await?.ok_or_else(|| {
        Error::Corrupt(format!(
            "definition `{}` version {} was stored but cannot be read back",
            d.name, d.version
        ))
    })
}

pub(super) async fn get(
    pool: &AnyPool,
    name: &str,
    version: u32,
) -> Result<Option<StoredDefinition>> {
    let sql = format!("SELECT {COLUMNS} FROM saga_definitions WHERE name = $1 AND version = $2");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(name)
        .bind(i64::from(version))
        .fetch_optional(pool)
        .await
        .map_err(Error::Database)?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(pool: &AnyPool, in_flight: &[&str]) -> Result<Vec<DefinitionUse>> {
    let sql = format!("SELECT {COLUMNS} FROM saga_definitions ORDER BY name, version");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .map_err(Error::Database)?;
    let counts = counts(pool, in_flight).await?;
    rows.iter()
        .map(|row| {
            let definition = decode(row)?;
            let in_flight = counts
                .get(&(definition.name.clone(), definition.version))
                .copied()
                .unwrap_or(0);
            Ok(DefinitionUse {
                definition,
                in_flight,
            })
        })
        .collect()
}

/// Sagas with one of `statuses`, by (name, version). On the (status, created_at) index, so
/// it reads the sagas in flight only, however many have ended.
async fn counts(
    pool: &AnyPool,
    statuses: &[&str],
) -> Result<std::collections::BTreeMap<(String, u32), u64>> {
    if statuses.is_empty() {
        return Ok(Default::default());
    }
    // Only generated placeholders are spliced in; the statuses themselves are bound.
    let sql = format!(
        "SELECT name, definition_version, COUNT(*) AS n FROM sagas \
         WHERE status IN ({}) GROUP BY name, definition_version",
        placeholders(1, statuses.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for status in statuses {
        query = query.bind(*status);
    }
    let rows = query.fetch_all(pool).await.map_err(Error::Database)?;
    rows.iter()
        .map(|row| {
            let name: String = column(row, "name")?;
            let version = to_u32(column(row, "definition_version")?)?;
            let n: i64 = column(row, "n")?;
            Ok(((name, version), u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

pub(super) async fn retire(
    pool: &AnyPool,
    name: &str,
    version: u32,
    in_flight: &[&str],
    at: Timestamp,
) -> Result<Retirement> {
    // The sagas counted in flight may end between the update and the count: look again.
    for _ in 0..3 {
        let updated = retire_unless_in_flight(pool, name, version, in_flight, at).await?;
        let Some(stored) = get(pool, name, version).await? else {
            return Ok(Retirement::Unknown);
        };
        if updated {
            return Ok(Retirement::Retired(stored));
        }
        let n = counts(pool, in_flight)
            .await?
            .get(&(name.to_string(), version))
            .copied()
            .unwrap_or(0);
        if n > 0 {
            return Ok(Retirement::InFlight(n));
        }
    }
    Err(Error::Corrupt(format!(
        "definition `{name}` version {version} is neither retirable nor in flight"
    )))
}

/// Sets `retired_at` unless a saga of the version has one of `in_flight`; whether it did.
async fn retire_unless_in_flight(
    pool: &AnyPool,
    name: &str,
    version: u32,
    in_flight: &[&str],
    at: Timestamp,
) -> Result<bool> {
    // One statement, so no saga can be counted out between the check and the write. A start
    // racing with it may still create a saga of the version just retired: that saga runs on
    // the stored definition like any other, so the race costs nothing but the retirement's
    // promise that no saga of it is in flight.
    let guard = if in_flight.is_empty() {
        String::new()
    } else {
        format!(
            "AND NOT EXISTS (SELECT 1 FROM sagas WHERE name = $4 AND definition_version = $5 \
             AND status IN ({}))",
            placeholders(6, in_flight.len())
        )
    };
    // Only generated placeholders are spliced in; every value is bound.
    let sql = format!(
        "UPDATE saga_definitions SET retired_at = COALESCE(retired_at, $1) \
         WHERE name = $2 AND version = $3 {guard}"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(at.millis())
        .bind(name)
        .bind(i64::from(version));
    if !in_flight.is_empty() {
        query = query.bind(name).bind(i64::from(version));
        for status in in_flight {
            query = query.bind(*status);
        }
    }
    let result = query.execute(pool).await.map_err(Error::Database)?;
    Ok(result.rows_affected() > 0)
}

fn decode(row: &AnyRow) -> Result<StoredDefinition> {
    Ok(StoredDefinition {
        name: column(row, "name")?,
        version: to_u32(column(row, "version")?)?,
        hash: column(row, "hash")?,
        source: column(row, "source")?,
        stored_at: Timestamp(column(row, "stored_at")?),
        retired_at: column::<Option<i64>>(row, "retired_at")?.map(Timestamp),
    })
}

fn column<T>(row: &AnyRow, name: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name)
        .map_err(|e| Error::Corrupt(format!("saga_definitions column `{name}`: {e}")))
}

fn to_u32(value: i64) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::Corrupt(format!("definition version out of range: {value}")))
}
