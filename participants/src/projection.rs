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
use serde_json::Value;
use sqlx::AnyConnection;
use std::future::Future;

/// Keys per page when the caller does not say, and at most.
pub const DEFAULT_PAGE: u32 = 500;
pub const MAX_PAGE: u32 = 5_000;

/// One projection of a participant's log.
pub trait Projection: Send + Sync {
    /// What the read model holds for one key.
    type Row: PartialEq + Send;

    /// Its name, as `saga projections` takes it (`accounts`, `orders`).
    const NAME: &'static str;

    /// The keys after `after` (all with `""`) that have a log or a row, in order, at most
    /// `limit`.
    fn keys<'a>(
        conn: &'a mut AnyConnection,
        after: &'a str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'a;

    /// Takes the lock a business write of `key` takes (a write that changes nothing).
    fn lock<'a>(
        tx: &'a mut AnyConnection,
        key: &'a str,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;

    /// The row the fold of `key`'s log says it has (`None`: no row), or why the log cannot
    /// be folded (an event that does not decode).
    fn expected<'a>(
        tx: &'a mut AnyConnection,
        key: &'a str,
    ) -> impl Future<Output = Result<Result<Option<Self::Row>, String>, Error>> + Send + 'a;

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
        P::keys(&mut conn, after.as_deref().unwrap_or(""), i64::from(limit)).await?
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
    P::lock(&mut tx, key).await?;
    let stored = P::stored(&mut tx, key).await?;
    let expected = match P::expected(&mut tx, key).await? {
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
