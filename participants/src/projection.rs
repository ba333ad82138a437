//! A participant's read model checked against the fold of its log, and rebuilt from it: the
//! `accounts` rows of the account participant, the `orders` rows of the order participant.
//!
//! Each projection says how to list its keys (from the log and from the rows, so a row
//! without a log and a log without a row are both found), how to fold one key's log into
//! the row it should have, how to read the row it has, and how to write one. This module
//! walks a page of keys: each key in its own transaction that first takes the row's lock
//! (the lock every business write of that key takes), so a key is read and rewritten
//! between two commands, never in the middle of one, and the participant keeps running.
//! A verify rolls its transaction back; a rebuild writes what the fold says and commits.

use crate::admin::{Difference, ProjectionPage, Reply};
use crate::participant::{Error, retry_conflicts};
use crate::store::Store;
use saga_protocol::Timestamp;
use saga_protocol::upcast::Stored;
use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe};
use std::future::Future;

/// Keys per page when the caller does not say, and at most.
pub const DEFAULT_PAGE: u32 = 500;
pub const MAX_PAGE: u32 = 5_000;

/// One projection of a participant's log: where its log and rows are, how to fold the one
/// into the other, and how to read and write a row.
pub trait Projection: Send + Sync {
    /// What the read model holds for one key.
    type Row: PartialEq + Send;
    /// An event of the log, decoded.
    type Event;

    /// Its name, as `saga projections` takes it (`accounts`, `orders`).
    const NAME: &'static str;
    /// The key column, in the log and in the rows (`account_id`).
    const KEY: &'static str;
    /// The log table (`account_events`: key, `sequence`, `payload`, `occurred_at`).
    const LOG: &'static str;
    /// The rows table (`accounts`).
    const ROWS: &'static str;
    /// Which rows belong to the projection (a SQL condition on the rows table).
    const PROJECTED: &'static str;
    /// A column of the rows that every business write of a key updates: set to itself, it
    /// takes the lock those writes take.
    const LOCKED: &'static str;

    /// Reads a stored payload, through the upcasters.
    fn decode(payload: &str, stored: &Stored) -> Result<Self::Event, String>;

    /// The row a key's events say it has (`None`: no events, no row), each event with when
    /// it happened, or why they do not follow each other.
    fn fold(events: &[(Self::Event, Timestamp)]) -> Result<Option<Self::Row>, String>;

    /// The row it has, if any.
    fn stored<'a>(
        tx: &'a mut AnyConnection,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<Self::Row>, Error>> + Send + 'a;

    /// `(column, stored, expected)` of every column in which the two differ.
    fn columns(stored: &Self::Row, expected: &Self::Row) -> Vec<(&'static str, Value, Value)>;

    /// What a row says it is, for a row that should not be there or is missing.
    fn summary(row: &Self::Row) -> Value;

    /// Replaces `key`'s row with `row` (`None`: deletes it).
    fn write<'a>(
        tx: &'a mut AnyConnection,
        key: &'a str,
        row: Option<Self::Row>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;
}

/// The keys after `after` (all with `""`) that have a log or a projected row, in order, at
/// most `limit`. Each half is a range scan of a primary key.
async fn keys<P: Projection>(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, Error> {
    let (key, log, rows, projected) = (P::KEY, P::LOG, P::ROWS, P::PROJECTED);
    // Only the projection's own constant names are spliced in; the values are bound.
    let sql = format!(
        "SELECT {key} FROM (SELECT DISTINCT {key} FROM {log} WHERE {key} > $1 \
         UNION SELECT {key} FROM {rows} WHERE {key} > $1 AND {projected}) AS ids \
         ORDER BY {key} LIMIT $2"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Takes the lock a business write of `key` takes.
async fn lock<P: Projection>(tx: &mut AnyConnection, key: &str) -> Result<(), Error> {
    let (locked, rows, column) = (P::LOCKED, P::ROWS, P::KEY);
    let sql = format!("UPDATE {rows} SET {locked} = {locked} WHERE {column} = $1");
    sqlx::query(AssertSqlSafe(sql))
        .bind(key)
        .execute(tx)
        .await?;
    Ok(())
}

/// The row the fold of `key`'s log says it has, or why the log cannot be folded (a gap, an
/// event that does not decode, events out of order).
async fn expected<P: Projection>(
    tx: &mut AnyConnection,
    key: &str,
) -> Result<Result<Option<P::Row>, String>, Error> {
    let (log, column) = (P::LOG, P::KEY);
    let sql = format!(
        "SELECT sequence, payload, occurred_at FROM {log} WHERE {column} = $1 ORDER BY sequence"
    );
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(key)
        .fetch_all(tx)
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for ((sequence, payload, at), n) in rows.iter().zip(1i64..) {
        if *sequence != n {
            return Ok(Err(format!(
                "the log has event {sequence} where event {n} should be"
            )));
        }
        let stored = Stored {
            recorded_at: Timestamp(*at),
        };
        match P::decode(payload, &stored) {
            Ok(event) => events.push((event, Timestamp(*at))),
            Err(e) => return Ok(Err(format!("event {sequence}: {e}"))),
        }
    }
    Ok(P::fold(&events))
}

/// The answer to an admin `verify` or `rebuild`: the page, or what to send instead.
pub async fn answer<P: Projection>(
    store: &Store,
    after: Option<String>,
    limit: Option<u32>,
    rebuild: bool,
) -> Result<Reply, Error> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Ok(Reply::Error(format!(
            "`limit` {limit} is out of range: use 1 to {MAX_PAGE}"
        )));
    }
    Ok(Reply::ok(&page::<P>(store, after, limit, rebuild).await?))
}

/// Verifies (`rebuild: false`) or rebuilds a page of projection `P`: the keys after
/// `after`, at most `limit`.
pub async fn page<P: Projection>(
    store: &Store,
    after: Option<String>,
    limit: u32,
    rebuild: bool,
) -> Result<ProjectionPage, Error> {
    let keys = {
        let mut conn = store.pool().acquire().await?;
        keys::<P>(&mut conn, after.as_deref().unwrap_or(""), i64::from(limit)).await?
    };
    let full = keys.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    let mut page = ProjectionPage {
        projection: P::NAME.to_string(),
        next: if full { keys.last().cloned() } else { None },
        ..ProjectionPage::default()
    };
    for key in keys {
        let (found, mended) = retry_conflicts(|| one::<P>(store, &key, rebuild)).await?;
        page.checked += 1;
        page.rebuilt += u64::from(mended);
        page.differences.extend(found);
    }
    Ok(page)
}

/// Compares one key's row with the fold of its log, and rewrites it if told to and it
/// differs. Returns the differences and whether the row was rewritten.
async fn one<P: Projection>(
    store: &Store,
    key: &str,
    rebuild: bool,
) -> Result<(Vec<Difference>, bool), Error> {
    let mut tx = store.begin().await?;
    lock::<P>(&mut tx, key).await?;
    let stored = P::stored(&mut tx, key).await?;
    let expected = match expected::<P>(&mut tx, key).await? {
        Ok(expected) => expected,
        Err(reason) => {
            tx.rollback().await?;
            let unreadable = difference(key, "log", Value::String(reason), Value::Null);
            return Ok((vec![unreadable], false));
        }
    };
    let found: Vec<Difference> = match (&stored, &expected) {
        (None, None) => Vec::new(),
        (Some(stored), Some(expected)) => P::columns(stored, expected)
            .into_iter()
            .filter(|(_, stored, expected)| stored != expected)
            .map(|(field, stored, expected)| difference(key, field, stored, expected))
            .collect(),
        (stored, expected) => vec![difference(
            key,
            "row",
            stored.as_ref().map_or(Value::Null, P::summary),
            expected.as_ref().map_or(Value::Null, P::summary),
        )],
    };
    if rebuild && !found.is_empty() {
        P::write(&mut tx, key, expected).await?;
        tx.commit().await?;
        return Ok((found, true));
    }
    tx.rollback().await?;
    Ok((found, false))
}

fn difference(key: &str, field: &str, stored: Value, expected: Value) -> Difference {
    Difference {
        key: key.to_string(),
        field: field.to_string(),
        stored,
        expected,
    }
}
