//! The passbook as a pure fold of an account's log: given the log with both clocks, when it is
//! read by occurrence, by booking, and for its correction notices, then each view is what a
//! bank's statement would show (insta snapshots of the text), and every view ends on the
//! account's balances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_participants::account::events::{AccountEvent, Balances};
use saga_participants::account::passbook::{self, Clock, Periods, Statement};
use saga_protocol::Timestamp;
use std::fmt::Write;
use std::time::Duration;

const HOUR: i64 = 3_600_000;
/// 2026-12-01T00:00:00Z.
const DAY_1: i64 = 1_796_083_200_000;
const DAY_2: i64 = DAY_1 + 24 * HOUR;
const DAY_3: i64 = DAY_2 + 24 * HOUR;

fn at(hours: f64) -> Timestamp {
    Timestamp(DAY_1 + (hours * HOUR as f64) as i64)
}

fn daily() -> Periods {
    Periods {
        length: Duration::from_secs(24 * 3600),
        cutoff: Duration::ZERO,
        max_delay: Duration::from_secs(3600),
    }
}

fn reserve(amount: i64, key: &str, sent: Timestamp) -> AccountEvent {
    AccountEvent::CreditReserved {
        amount,
        effect_key: key.into(),
        requested_at: sent,
    }
}

/// Given an account opened with 1000 on day 1, reservations of 300 at 10:00 (booked at once),
/// 200 sent at 23:30 and booked at 00:20 (within the hour day 1 stays open) and 100 sent at
/// 23:50 but held up until 02:00 (after day 1 closed at 01:00), and the 300 released on day 2.
fn log() -> Vec<(i64, AccountEvent, Timestamp)> {
    vec![
        (
            1,
            AccountEvent::AccountOpened {
                account_id: "ada".into(),
            },
            at(9.0),
        ),
        (
            2,
            AccountEvent::FundsDeposited {
                amount: 1000,
                operation_id: "open".into(),
            },
            at(9.0),
        ),
        (3, reserve(300, "s1.reserve", at(10.0)), at(10.001)),
        (
            4,
            reserve(200, "s2.reserve", at(23.5)),
            at(24.0 + 20.0 / 60.0),
        ),
        (
            5,
            reserve(100, "s3.reserve", at(23.0 + 50.0 / 60.0)),
            at(26.0),
        ),
        (
            6,
            AccountEvent::CreditReleased {
                amount: 300,
                effect_key: "s1.reserve".into(),
                requested_at: at(32.0),
            },
            at(32.0),
        ),
    ]
}

fn render(s: &Statement) -> String {
    let mut out = String::new();
    let span = |t: Option<Timestamp>| t.map_or("open".to_string(), |t| t.to_string());
    writeln!(out, "by {} from {} to {}", s.by, span(s.from), span(s.to)).unwrap();
    writeln!(out, "opening {}", s.opening).unwrap();
    for l in &s.lines {
        let e = &l.entry;
        writeln!(
            out,
            "#{} occurred {} booked {} {} {} {} -> {}{}",
            e.sequence,
            e.occurred_at,
            e.booked_at,
            e.kind,
            e.amount,
            e.reference,
            l.balance,
            if l.late { "  LATE" } else { "" }
        )
        .unwrap();
    }
    writeln!(out, "closing {}", s.closing).unwrap();
    for n in &s.corrections {
        writeln!(out, "correction closed at {}: {}", n.closed_at, n.detail).unwrap();
    }
    out
}

fn view(clock: Clock, from: Option<i64>, to: Option<i64>) -> Statement {
    let entries = passbook::entries(&log(), &daily());
    passbook::statement(
        "ada",
        &entries,
        &daily(),
        clock,
        from.map(Timestamp),
        to.map(Timestamp),
    )
}

#[test]
fn by_occurrence_day_1_is_backfilled_with_the_late_reservation_and_its_notice() {
    // When day 1 is read by when things happened.
    let day_1 = view(Clock::Occurred, Some(DAY_1), Some(DAY_2));
    // Then the reservation held up until day 2 is in it, flagged late, with the notice.
    assert_eq!(day_1.lines.len(), 5);
    assert!(day_1.lines[4].late);
    assert_eq!(day_1.corrections.len(), 1);
    insta::assert_snapshot!(render(&day_1));
}

#[test]
fn by_booking_day_1_stays_as_it_was_reported_and_day_2_carries_the_late_entry() {
    // When days 1 and 2 are read by when things were booked.
    let day_1 = view(Clock::Booked, Some(DAY_1), Some(DAY_2));
    let day_2 = view(Clock::Booked, Some(DAY_2), Some(DAY_3));
    // Then day 1 holds what was booked on it only, and its closing is day 2's opening.
    assert!(day_1.corrections.is_empty());
    assert_eq!(day_1.closing, day_2.opening);
    assert_eq!(day_2.corrections.len(), 1);
    insta::assert_snapshot!(format!("{}\n{}", render(&day_1), render(&day_2)));
}

#[test]
fn the_notice_says_how_the_closed_period_changes() {
    // When the notices of the whole log are read.
    let entries = passbook::entries(&log(), &daily());
    let notices = passbook::notices(&entries, &daily());
    // Then there is one, against day 1, for the reservation of 100 booked on day 2: day 1's
    // closing by occurrence goes from what it was at the close to that less the 100.
    assert_eq!(notices.len(), 1);
    let n = &notices[0];
    assert_eq!(n.entry.sequence, 5);
    assert_eq!(
        (n.corrects.start, n.corrects.end),
        (Timestamp(DAY_1), Timestamp(DAY_2))
    );
    assert_eq!(n.closed_at, Timestamp(DAY_2 + HOUR));
    assert_eq!(
        (n.closing_before.available, n.closing_before.reserved),
        (500, 500)
    );
    assert_eq!(
        (n.closing_after.available, n.closing_after.reserved),
        (400, 600)
    );
    // The entry booked after day 1 ended but before it closed belongs to day 1: no notice.
    assert!(!entries[3].late());
    assert_eq!(entries[3].booked_in, entries[3].period);
    insta::assert_snapshot!(n.detail);
}

#[test]
fn every_view_of_the_whole_log_ends_on_the_accounts_balances() {
    let events: Vec<AccountEvent> = log().into_iter().map(|(_, e, _)| e).collect();
    let balances = Balances::fold(&events);
    for clock in [Clock::Occurred, Clock::Booked] {
        let all = view(clock, None, None);
        assert_eq!(all.lines.len(), 6, "{clock}");
        assert_eq!(
            (all.closing.available, all.closing.reserved),
            (balances.available, balances.reserved),
            "{clock}"
        );
        // A view split at any time is the whole view: opening of the second is the closing of
        // the first.
        for split in [DAY_1, DAY_1 + 10 * HOUR, DAY_2, DAY_2 + 2 * HOUR] {
            let (a, b) = (
                view(clock, None, Some(split)),
                view(clock, Some(split), None),
            );
            assert_eq!(a.closing, b.opening, "{clock} at {split}");
            assert_eq!(a.lines.len() + b.lines.len(), 6, "{clock} at {split}");
            assert_eq!(b.closing, all.closing);
        }
    }
}

#[test]
fn periods_start_at_the_cutoff_and_a_boundary_opens_the_next() {
    let evening = Periods {
        cutoff: Duration::from_secs(17 * 3600),
        ..daily()
    };
    let p = evening.period_of(at(18.0));
    assert_eq!((p.start, p.end), (at(17.0), at(41.0)));
    let before = evening.period_of(at(16.999));
    assert_eq!((before.start, before.end), (at(-7.0), at(17.0)));
    assert_eq!(evening.period_of(at(17.0)), p);
    assert_eq!(evening.closes_at(p), at(42.0));
    // A late entry is booked in the period open when it arrives.
    let entries = passbook::entries(&log(), &evening);
    assert!(
        entries.iter().all(|e| !e.late()),
        "17:00 days close late enough"
    );
}
