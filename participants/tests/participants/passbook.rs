//! The passbook through the running account participant: reservations booked on time and one
//! held up past its period's close, read over the admin request by either clock, with the
//! correction notice of the late one.

use crate::account::reserve;
use crate::harness::{Backend, Participant, output};
use saga_participants::account::passbook::{Clock, Periods};
use saga_participants::{Kind, Options, admin};
use saga_protocol::{CommandEnvelope, Timestamp};
use std::time::Duration;
use uuid::Uuid;

crate::both_backends!(a_command_held_up_past_its_close_is_booked_late_with_a_notice);

fn hourly() -> Periods {
    Periods {
        length: Duration::from_secs(3_600),
        cutoff: Duration::ZERO,
        max_delay: Duration::from_secs(60),
    }
}

fn sent_at(mut command: CommandEnvelope, at: Timestamp) -> CommandEnvelope {
    command.sent_at = at;
    command
}

async fn a_command_held_up_past_its_close_is_booked_late_with_a_notice(backend: Backend) {
    let periods = hourly();
    let options = Options {
        statement_period: periods.length,
        statement_cutoff: periods.cutoff,
        statement_max_delay: periods.max_delay,
        ..Options::default()
    };
    let p = Participant::start_with(Kind::Account, backend, options).await;
    admin::open_account(&p.client, "ada", 1_000)
        .await
        .expect("open");
    let now = Timestamp::now();
    let this_hour = periods.period_of(now);
    // Sent in the hour before last, so long closed; delivered only now.
    let held_up_at = Timestamp(this_hour.start.0 - 3_600_000 - 1);
    let closed = periods.period_of(held_up_at);
    let held_up = sent_at(reserve(Uuid::new_v4(), 1, "ada", 100), held_up_at);
    let on_time = reserve(Uuid::new_v4(), 1, "ada", 30);
    for c in [&held_up, &on_time] {
        p.publish(c, c.message_id.as_str()).await;
        assert!(output(&p.reply(c).await)["reserved"].is_number());
    }

    // By occurrence, the closed hour holds the late reservation, backfilled, and its notice.
    let by_occurrence = admin::statement(
        &p.client,
        "ada",
        Clock::Occurred,
        Some(closed.start),
        Some(closed.end),
    )
    .await
    .expect("statement");
    assert_eq!(by_occurrence.lines.len(), 1, "{by_occurrence:?}");
    let late = &by_occurrence.lines[0];
    assert!(late.late);
    assert_eq!(late.entry.reference, held_up.effect_key);
    assert_eq!(late.entry.occurred_at, held_up_at);
    assert_eq!(late.entry.period, closed);
    assert!(late.entry.booked_at >= now);
    assert_eq!(
        late.entry.booked_in,
        periods.period_of(late.entry.booked_at)
    );
    // The account was opened and funded after the reservation was sent: by occurrence, the
    // hour opens empty and ends 100 short.
    assert_eq!(by_occurrence.opening.available, 0);
    assert_eq!(by_occurrence.closing.available, -100);
    let [notice] = &by_occurrence.corrections[..] else {
        panic!("one notice: {by_occurrence:?}")
    };
    assert_eq!(notice.corrects, closed);
    assert_eq!(notice.closed_at, closed.end.plus(periods.max_delay));
    assert_eq!(
        (
            notice.closing_before.available,
            notice.closing_after.available
        ),
        (0, -100)
    );

    // By booking, the closed hour holds nothing: what was reported for it stays as it was.
    let closed_by_booking = admin::statement(
        &p.client,
        "ada",
        Clock::Booked,
        Some(closed.start),
        Some(closed.end),
    )
    .await
    .expect("statement");
    assert!(closed_by_booking.lines.is_empty());
    // And from the late one's booking on, both reservations in the order they were booked,
    // the late one flagged.
    let late_booked = late.entry.booked_at;
    let booked_now = admin::statement(&p.client, "ada", Clock::Booked, Some(late_booked), None)
        .await
        .expect("statement");
    let references: Vec<(&str, bool)> = booked_now
        .lines
        .iter()
        .map(|l| (l.entry.reference.as_str(), l.late))
        .collect();
    assert_eq!(
        references,
        [
            (held_up.effect_key.as_str(), true),
            (on_time.effect_key.as_str(), false)
        ]
    );
    assert_eq!(booked_now.opening.available, 1_000);
    assert_eq!(booked_now.closing.available, 870);
    assert_eq!(booked_now.corrections.len(), 1);

    // The whole passbook ends on the account's balance by either clock.
    let balance = admin::balance(&p.client, "ada").await.expect("balance");
    for by in [Clock::Occurred, Clock::Booked] {
        let all = admin::statement(&p.client, "ada", by, None, None)
            .await
            .expect("statement");
        assert_eq!(
            (all.closing.available, all.closing.reserved),
            (balance.available, balance.reserved),
            "{by}"
        );
    }
    let backwards = admin::statement(
        &p.client,
        "ada",
        Clock::Booked,
        Some(closed.end),
        Some(closed.start),
    )
    .await;
    assert!(
        matches!(&backwards, Err(admin::Error::Refused(r)) if r.contains("is before `from`")),
        "{backwards:?}"
    );
    let refused = admin::statement(&p.client, "nobody", Clock::Booked, None, None).await;
    assert!(
        matches!(&refused, Err(admin::Error::Refused(r)) if r == "no account for customer `nobody`"),
        "{refused:?}"
    );
    p.stop().await;
}
