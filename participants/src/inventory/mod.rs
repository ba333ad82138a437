//! The inventory participant: the seats of each show, reserved by sagas and released by
//! their compensation, then sold once the booking is confirmed. The seat reservation of the
//! conference-management practice (reserve, then confirm or release), with each show's seat
//! map changed under its version.
//!
//! | command        | kind                          | payload              | success output                          |
//! |----------------|-------------------------------|----------------------|-----------------------------------------|
//! | `ReserveSeats` | forward                       | `{show_id, seats}`   | `{show_id, seats, reservation_id}`      |
//! | `ReleaseSeats` | compensation of ReserveSeats  | (by effect key)      | `{show_id, released}`                   |
//! | `ConfirmSeats` | forward                       | `{reservation_id}`   | `{reservation_id, confirmed: true}`     |
//!
//! The reservation id is a UUID v5 of the effect key ([`reservation_id_for`]), so a retried
//! `ReserveSeats` names the same hold and finds it. A `ReleaseSeats` that finds no hold
//! leaves a tombstone, and the late `ReserveSeats` is refused (DESIGN guarantee 6). Two
//! reservations racing for the last seats both read the map at one version; the second
//! write finds another version, its transaction runs again and sees the seats gone.
//!
//! ```
//! use saga_participants::inventory::reservation_id_for;
//! assert_eq!(reservation_id_for("saga-1.reserve_seats"), reservation_id_for("saga-1.reserve_seats"));
//! ```

pub mod seats;

use crate::admin::{Reply, Request};
use crate::participant::{Error, Participant, payload, rejected, succeeded};
use crate::{Kind, store::Store};
use saga_protocol::{CommandEnvelope, CommandKind, Outcome, Timestamp};
use seats::{Hold, SeatMap, Status};
use serde::Deserialize;
use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

/// Holds seats of a show for a reservation (forward).
pub const RESERVE_SEATS: &str = "ReserveSeats";
/// Releases the seats held under the same effect key (compensation of `ReserveSeats`).
pub const RELEASE_SEATS: &str = "ReleaseSeats";
/// Sells the seats of a reservation (forward; the pivot of `book_seats`).
pub const CONFIRM_SEATS: &str = "ConfirmSeats";

/// Namespace of the reservation ids derived from effect keys. A persisted contract.
const RESERVATION_NAMESPACE: Uuid = Uuid::from_u128(0x5ea7_0000_4b1d_4c0a_8d3e_7365_6174_7321);

/// The id of the reservation made under `effect_key`.
pub fn reservation_id_for(effect_key: &str) -> String {
    Uuid::new_v5(&RESERVATION_NAMESPACE, effect_key.as_bytes()).to_string()
}

/// The inventory participant.
#[derive(Debug, Clone)]
pub struct Inventory {
    store: Store,
}

impl Inventory {
    pub fn new(store: Store) -> Self {
        Inventory { store }
    }
}

impl Participant for Inventory {
    const NAME: &'static str = Kind::Inventory.as_str();
    const COMMANDS: &'static [(&'static str, CommandKind)] = &[
        (RESERVE_SEATS, CommandKind::Forward),
        (RELEASE_SEATS, CommandKind::Compensation),
        (CONFIRM_SEATS, CommandKind::Forward),
    ];

    fn store(&self) -> &Store {
        &self.store
    }

    async fn apply(
        &self,
        tx: &mut AnyConnection,
        command: &CommandEnvelope,
        now: Timestamp,
    ) -> Result<Outcome, Error> {
        match command.command.as_str() {
            RESERVE_SEATS => reserve(tx, command, now).await,
            RELEASE_SEATS => release(tx, command, now).await,
            CONFIRM_SEATS => confirm(tx, command, now).await,
            other => Ok(rejected(format!("unknown inventory command `{other}`"))),
        }
    }

    async fn admin(&self, request: Request) -> Result<Reply, Error> {
        let mut conn = self.store.pool().acquire().await?;
        match request {
            Request::CreateShow { show_id, capacity } => {
                if show_id.is_empty() || capacity < 0 {
                    return Ok(Reply::Error(
                        "a show needs a name and a capacity of 0 or more seats".into(),
                    ));
                }
                seats::create(&mut conn, &show_id, capacity).await?;
                Ok(Reply::ok(&seats::seat_map(&mut conn, &show_id).await?))
            }
            Request::Shows => Ok(Reply::ok(&seats::all(&mut conn).await?)),
            _ => Ok(Reply::Error(
                "the inventory participant serves shows only".into(),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReserveSeats {
    show_id: String,
    seats: i64,
}

fn held_output(hold: &Hold) -> Outcome {
    succeeded(json!({
        "show_id": hold.show_id,
        "seats": hold.seats,
        "reservation_id": hold.reservation_id,
    }))
}

async fn reserve(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    if let Some(existing) = seats::by_effect_key(tx, key).await? {
        return Ok(match existing.status {
            // A retry of the same step (new attempt, new message id): the seats are held.
            Status::Held | Status::Sold => held_output(&existing),
            Status::Released => rejected(format!(
                "the seats of {key} were reserved and released (compensated)"
            )),
            Status::Tombstone => rejected(format!("{key} was compensated before it arrived")),
        });
    }
    let args: ReserveSeats = match payload(command) {
        Ok(args) => args,
        Err(refusal) => return Ok(refusal),
    };
    if args.seats <= 0 {
        return Ok(rejected(format!(
            "seats must be positive, got {}",
            args.seats
        )));
    }
    let Some(map) = seats::seat_map(tx, &args.show_id).await? else {
        return Ok(rejected(format!("no show `{}`", args.show_id)));
    };
    if map.free() < args.seats {
        return Ok(rejected(format!(
            "not enough seats for {}: {} free, {} requested",
            args.show_id,
            map.free(),
            args.seats
        )));
    }
    let hold = Hold {
        effect_key: key.to_string(),
        reservation_id: reservation_id_for(key),
        show_id: args.show_id,
        seats: args.seats,
        status: Status::Held,
    };
    // The key first: a concurrent retry or tombstone under this key conflicts here.
    seats::insert(tx, &hold, now).await?;
    let next = SeatMap {
        held: map.held + hold.seats,
        ..map.clone()
    };
    seats::write(tx, &map, &next).await?;
    Ok(held_output(&hold))
}

fn released_output(hold: &Hold) -> Outcome {
    let released = if hold.status == Status::Tombstone {
        0
    } else {
        hold.seats
    };
    succeeded(json!({ "show_id": hold.show_id, "released": released }))
}

async fn release(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let key = command.effect_key.as_str();
    let Some(existing) = seats::by_effect_key(tx, key).await? else {
        // Compensation before the action: leave a tombstone so the late reservation is refused.
        let show_id = command
            .payload
            .get("show_id")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let tombstone = Hold {
            effect_key: key.to_string(),
            reservation_id: reservation_id_for(key),
            show_id: show_id.to_string(),
            seats: 0,
            status: Status::Tombstone,
        };
        seats::insert(tx, &tombstone, now).await?;
        return Ok(released_output(&tombstone));
    };
    match existing.status {
        Status::Released | Status::Tombstone => Ok(released_output(&existing)),
        Status::Sold => Ok(rejected(format!(
            "the seats of reservation {} are sold: a confirmed booking is not released",
            existing.reservation_id
        ))),
        Status::Held => {
            let map = seats::seat_map(tx, &existing.show_id)
                .await?
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "seat hold {key} names missing show {}",
                        existing.show_id
                    ))
                })?;
            seats::set_status(tx, key, Status::Held, Status::Released, now).await?;
            let next = SeatMap {
                held: map.held - existing.seats,
                ..map.clone()
            };
            seats::write(tx, &map, &next).await?;
            let released = Hold {
                status: Status::Released,
                ..existing
            };
            Ok(released_output(&released))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfirmSeats {
    reservation_id: String,
}

async fn confirm(
    tx: &mut AnyConnection,
    command: &CommandEnvelope,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let args: ConfirmSeats = match payload(command) {
        Ok(args) => args,
        Err(refusal) => return Ok(refusal),
    };
    let confirmed = |id: &str| succeeded(json!({ "reservation_id": id, "confirmed": true }));
    let Some(hold) = seats::by_reservation(tx, &args.reservation_id).await? else {
        return Ok(rejected(format!(
            "no reservation `{}`",
            args.reservation_id
        )));
    };
    match hold.status {
        Status::Sold => Ok(confirmed(&hold.reservation_id)),
        Status::Released | Status::Tombstone => Ok(rejected(format!(
            "reservation {} was released",
            hold.reservation_id
        ))),
        Status::Held => {
            let map = seats::seat_map(tx, &hold.show_id).await?.ok_or_else(|| {
                Error::Corrupt(format!(
                    "reservation {} names missing show {}",
                    hold.reservation_id, hold.show_id
                ))
            })?;
            seats::set_status(tx, &hold.effect_key, Status::Held, Status::Sold, now).await?;
            let next = SeatMap {
                held: map.held - hold.seats,
                sold: map.sold + hold.seats,
                ..map.clone()
            };
            seats::write(tx, &map, &next).await?;
            Ok(confirmed(&hold.reservation_id))
        }
    }
}
