//! The inventory participant over NATS: seats held, released and sold, compensation before
//! the action, the last seats raced for, and the seat map's version check.

use crate::harness::{Backend, Participant, command, output, rejection};
use crate::order::send;
use saga_participants::inventory::seats::{self, SeatMap};
use saga_participants::inventory::{
    CONFIRM_SEATS, RELEASE_SEATS, RESERVE_SEATS, reservation_id_for,
};
use saga_participants::participant::Error;
use saga_participants::{Kind, admin};
use saga_protocol::{CommandEnvelope, CommandKind};
use serde_json::json;
use uuid::Uuid;

crate::both_backends!(
    reserve_release_and_confirm,
    release_before_reserve_leaves_a_tombstone,
    two_bookings_race_for_the_last_seats,
    a_stale_seat_map_is_not_written,
);

fn reserve(saga: Uuid, attempt: u32, show: &str, seats: i64) -> CommandEnvelope {
    let payload = json!({ "show_id": show, "seats": seats });
    command(
        saga,
        "reserve_seats",
        attempt,
        Kind::Inventory,
        RESERVE_SEATS,
        CommandKind::Forward,
        payload,
    )
}

fn release(saga: Uuid, attempt: u32) -> CommandEnvelope {
    let payload = json!({ "show_id": "gala" });
    command(
        saga,
        "reserve_seats",
        attempt,
        Kind::Inventory,
        RELEASE_SEATS,
        CommandKind::Compensation,
        payload,
    )
}

fn confirm(saga: Uuid, reservation_id: &str) -> CommandEnvelope {
    let payload = json!({ "reservation_id": reservation_id });
    command(
        saga,
        "confirm_seats",
        1,
        Kind::Inventory,
        CONFIRM_SEATS,
        CommandKind::Forward,
        payload,
    )
}

async fn show(p: &Participant, show: &str) -> SeatMap {
    let shows = admin::shows(&p.client).await.expect("shows");
    shows
        .into_iter()
        .find(|m| m.show_id == show)
        .expect("the show is listed")
}

async fn reserve_release_and_confirm(backend: Backend) {
    let p = Participant::start(Kind::Inventory, backend).await;
    let created = admin::create_show(&p.client, "gala", 10)
        .await
        .expect("show created");
    assert_eq!((created.capacity, created.free()), (10, 10));
    // Creating it again leaves it as it is.
    assert_eq!(
        admin::create_show(&p.client, "gala", 99)
            .await
            .unwrap()
            .capacity,
        10
    );

    let (booked, released) = (Uuid::new_v4(), Uuid::new_v4());
    let held = send(&p, reserve(booked, 1, "gala", 4)).await;
    let reservation = output(&held)["reservation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        reservation,
        reservation_id_for(&format!("{booked}.reserve_seats"))
    );
    // A retry of the step finds the hold and holds nothing more.
    assert_eq!(
        output(&send(&p, reserve(booked, 2, "gala", 4)).await),
        output(&held)
    );
    send(&p, reserve(released, 1, "gala", 3)).await;
    let map = show(&p, "gala").await;
    assert_eq!((map.held, map.sold, map.free()), (7, 0, 3));

    // Released: its seats are free again, and a retry of the release changes nothing.
    let undone = send(&p, release(released, 1)).await;
    assert_eq!(output(&undone)["released"], 3);
    assert_eq!(
        output(&send(&p, release(released, 2)).await),
        output(&undone)
    );
    assert_eq!(show(&p, "gala").await.free(), 6);

    // Confirmed: sold, once; a release after it is refused (the booking passed its pivot).
    let sold = send(&p, confirm(booked, &reservation)).await;
    assert_eq!(output(&sold)["confirmed"], true);
    assert_eq!(
        output(&send(&p, confirm(booked, &reservation)).await),
        output(&sold)
    );
    let map = show(&p, "gala").await;
    assert_eq!((map.held, map.sold, map.free()), (0, 4, 6));
    assert!(rejection(&send(&p, release(booked, 1)).await).contains("sold"));
    // Nothing to sell for an unknown reservation; not enough seats for a large one.
    assert!(
        rejection(&send(&p, confirm(Uuid::new_v4(), &Uuid::new_v4().to_string())).await)
            .contains("no reservation")
    );
    let too_many = send(&p, reserve(Uuid::new_v4(), 1, "gala", 7)).await;
    assert_eq!(
        rejection(&too_many),
        "not enough seats for gala: 6 free, 7 requested"
    );
    p.stop().await;
}

async fn release_before_reserve_leaves_a_tombstone(backend: Backend) {
    let p = Participant::start(Kind::Inventory, backend).await;
    admin::create_show(&p.client, "gala", 10).await.unwrap();
    let saga = Uuid::new_v4();
    let undone = send(&p, release(saga, 1)).await;
    assert_eq!(output(&undone)["released"], 0);
    let late = send(&p, reserve(saga, 1, "gala", 2)).await;
    assert!(
        rejection(&late).contains("compensated before it arrived"),
        "{late:?}"
    );
    assert_eq!(show(&p, "gala").await.free(), 10);
    p.stop().await;
}

async fn two_bookings_race_for_the_last_seats(backend: Backend) {
    let p = Participant::start(Kind::Inventory, backend).await;
    admin::create_show(&p.client, "gala", 5).await.unwrap();
    let (a, b) = (
        reserve(Uuid::new_v4(), 1, "gala", 3),
        reserve(Uuid::new_v4(), 1, "gala", 3),
    );
    // Both in flight at once.
    p.publish(&a, a.message_id.as_str()).await;
    p.publish(&b, b.message_id.as_str()).await;
    let replies = [p.reply(&a).await, p.reply(&b).await];
    let held = replies
        .iter()
        .filter(|r| r.outcome.status() == "succeeded")
        .count();
    assert_eq!(held, 1, "exactly one gets the seats: {replies:?}");
    let refused = replies
        .iter()
        .find(|r| r.outcome.status() == "rejected")
        .unwrap();
    assert_eq!(
        rejection(refused),
        "not enough seats for gala: 2 free, 3 requested"
    );
    let map = show(&p, "gala").await;
    assert_eq!((map.held, map.free()), (3, 2));
    p.stop().await;
}

async fn a_stale_seat_map_is_not_written(backend: Backend) {
    let p = Participant::start(Kind::Inventory, backend).await;
    admin::create_show(&p.client, "gala", 5).await.unwrap();
    let store = p.db.store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    let read = seats::seat_map(&mut conn, "gala").await.unwrap().unwrap();
    let first = SeatMap {
        held: 2,
        ..read.clone()
    };
    seats::write(&mut conn, &read, &first).await.unwrap();
    // A second writer that read the same version loses: its transaction would run again.
    let second = SeatMap {
        held: 4,
        ..read.clone()
    };
    let lost = seats::write(&mut conn, &read, &second).await.unwrap_err();
    assert!(matches!(lost, Error::Conflict(_)), "{lost:?}");
    let now = seats::seat_map(&mut conn, "gala").await.unwrap().unwrap();
    assert_eq!((now.held, now.version), (2, read.version + 1));
    drop(conn);
    store.close().await;
    p.stop().await;
}
