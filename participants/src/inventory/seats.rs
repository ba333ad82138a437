//! The inventory's tables: each show's seat map (`seat_maps`), changed only under its
//! version (optimistic concurrency: a write that lost the race is a
//! [`Error::Conflict`] and its transaction runs again), and the holds by effect key
//! (`seat_holds`).

use crate::participant::Error;
use saga_protocol::Timestamp;
use sqlx::AnyConnection;

/// A show's seats: `capacity = free + held + sold`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeatMap {
    pub show_id: String,
    pub capacity: i64,
    pub held: i64,
    pub sold: i64,
    pub version: i64,
}

impl SeatMap {
    pub fn free(&self) -> i64 {
        self.capacity - self.held - self.sold
    }
}

/// Where a hold is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Held,
    Released,
    Sold,
    /// A release that came before its reservation: the late reservation is refused.
    Tombstone,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Released => "released",
            Status::Sold => "sold",
            Status::Tombstone => "tombstone",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "held" => Ok(Status::Held),
            "released" => Ok(Status::Released),
            "sold" => Ok(Status::Sold),
            "tombstone" => Ok(Status::Tombstone),
            other => Err(Error::Corrupt(format!(
                "unknown seat hold status `{other}`"
            ))),
        }
    }
}

/// Seats held for a reservation, under the effect key of the step that reserved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub effect_key: String,
    pub reservation_id: String,
    pub show_id: String,
    pub seats: i64,
    pub status: Status,
}

type HoldRow = (String, String, String, i64, String);

fn hold((effect_key, reservation_id, show_id, seats, status): HoldRow) -> Result<Hold, Error> {
    Ok(Hold {
        effect_key,
        reservation_id,
        show_id,
        seats,
        status: Status::parse(&status)?,
    })
}

/// The hold (or tombstone) under `effect_key`.
pub async fn by_effect_key(
    conn: &mut AnyConnection,
    effect_key: &str,
) -> Result<Option<Hold>, Error> {
    let row: Option<HoldRow> = sqlx::query_as(
        "SELECT effect_key, reservation_id, show_id, seats, status FROM seat_holds WHERE effect_key = $1",
    )
        .bind(effect_key)
        .fetch_optional(conn)
        .await?;
    row.map(hold).transpose()
}

/// The hold of reservation `reservation_id`.
pub async fn by_reservation(
    conn: &mut AnyConnection,
    reservation_id: &str,
) -> Result<Option<Hold>, Error> {
    let row: Option<HoldRow> = sqlx::query_as(
        "SELECT effect_key, reservation_id, show_id, seats, status FROM seat_holds WHERE reservation_id = $1",
    )
        .bind(reservation_id)
        .fetch_optional(conn)
        .await?;
    row.map(hold).transpose()
}

/// Inserts `hold`; a concurrent insert under the same key is a [`Error::Conflict`].
pub async fn insert(conn: &mut AnyConnection, hold: &Hold, now: Timestamp) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO seat_holds (effect_key, reservation_id, show_id, seats, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&hold.effect_key)
    .bind(&hold.reservation_id)
    .bind(&hold.show_id)
    .bind(hold.seats)
    .bind(hold.status.as_str())
    .bind(now.millis())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the hold under `effect_key` from `from` to `to`, or fails with a conflict.
pub async fn set_status(
    conn: &mut AnyConnection,
    effect_key: &str,
    from: Status,
    to: Status,
    now: Timestamp,
) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE seat_holds SET status = $1, updated_at = $2 WHERE effect_key = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now.millis())
    .bind(effect_key)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "seat hold {effect_key} is no longer {}",
            from.as_str()
        )));
    }
    Ok(())
}

type MapRow = (String, i64, i64, i64, i64);

fn map((show_id, capacity, held, sold, version): MapRow) -> SeatMap {
    SeatMap {
        show_id,
        capacity,
        held,
        sold,
        version,
    }
}

/// Show `show_id`'s seat map.
pub async fn seat_map(conn: &mut AnyConnection, show_id: &str) -> Result<Option<SeatMap>, Error> {
    let row: Option<MapRow> = sqlx::query_as(
        "SELECT show_id, capacity, held, sold, version FROM seat_maps WHERE show_id = $1",
    )
    .bind(show_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(map))
}

/// Every show's seat map, by show.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<SeatMap>, Error> {
    let rows: Vec<MapRow> = sqlx::query_as(
        "SELECT show_id, capacity, held, sold, version FROM seat_maps ORDER BY show_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(map).collect())
}

/// Writes `next` over the seat map read as `read`, only if nobody wrote it since: the
/// version is the one read. A lost race is a [`Error::Conflict`], and the caller's
/// transaction runs again on the winner's map.
pub async fn write(conn: &mut AnyConnection, read: &SeatMap, next: &SeatMap) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE seat_maps SET held = $1, sold = $2, version = $3 WHERE show_id = $4 AND version = $5",
    )
    .bind(next.held)
    .bind(next.sold)
    .bind(read.version + 1)
    .bind(&read.show_id)
    .bind(read.version)
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "the seat map of {} changed since version {}",
            read.show_id, read.version
        )));
    }
    Ok(())
}

/// Creates show `show_id` with `capacity` seats, unless it exists: whether it was created.
pub async fn create(conn: &mut AnyConnection, show_id: &str, capacity: i64) -> Result<bool, Error> {
    if seat_map(&mut *conn, show_id).await?.is_some() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO seat_maps (show_id, capacity, held, sold, version) VALUES ($1, $2, 0, 0, 0)",
    )
    .bind(show_id)
    .bind(capacity)
    .execute(conn)
    .await?;
    Ok(true)
}
