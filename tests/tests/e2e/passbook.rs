//! The passbook over real processes, with statement periods of two seconds that close one
//! second after they end: a reservation held up while the account participant is down until
//! its period has closed is booked late, shown where it occurred by `saga account statement
//! --by occurred` with a correction notice, and where it was booked by `--by booked`.

use crate::system::{Backend, Options, Service, System};
use saga_participants::account::passbook::{Periods, Statement};
use saga_protocol::Timestamp;
use saga_testkit::wait_for;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn statement(system: &System, args: &[&str]) -> Statement {
    let mut all = vec!["account", "statement", "pass", "--output", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&system.cli(&all)).expect("statement json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_held_up_across_a_close_is_backfilled_by_occurrence_with_a_notice() {
    let periods = Periods {
        length: Duration::from_secs(2),
        cutoff: Duration::ZERO,
        max_delay: Duration::from_secs(1),
    };
    let options = Options::with_env(&[
        ("SAGA_STATEMENT_PERIOD", "2s"),
        ("SAGA_STATEMENT_MAX_DELAY", "1s"),
    ]);
    let mut system = System::start_with_options(Backend::Sqlite, options).await;
    system.open_account("pass", 10_000).await;
    let on_time = system.start_saga("pass", 100).await;
    assert_eq!(
        system.wait_terminal(&[on_time], LONG).await[&on_time],
        "completed"
    );

    // The account participant is down while the next saga sends its reservation.
    system.sigkill(Service::Account);
    let held_up = system.start_saga("pass", 50).await;
    system.wait_event(held_up, "StepStarted", LONG).await;
    let close = periods.closes_at(periods.period_of(Timestamp::now()));
    wait_for("the reservation's period to close", LONG, || async {
        (Timestamp::now() > close).then_some(())
    })
    .await
    .expect("the clock moves on");
    assert_eq!(
        system.event_types(held_up).await.last().map(String::as_str),
        Some("StepStarted"),
        "the reservation is still unanswered when its period closes"
    );
    system.spawn(Service::Account);
    assert_eq!(
        system.wait_terminal(&[held_up], LONG).await[&held_up],
        "completed"
    );

    let key = format!("{held_up}.reserve_credit");
    let by_occurrence = statement(&system, &["--by", "occurred"]);
    let line = by_occurrence
        .lines
        .iter()
        .find(|l| l.entry.reference == key)
        .unwrap_or_else(|| panic!("{key} in {by_occurrence:?}"));
    assert!(line.late, "{line:?}");
    let occurred = line.entry.occurred_at;
    assert!(
        occurred <= close && line.entry.booked_at > close,
        "{line:?}"
    );
    assert_eq!(line.entry.period, periods.period_of(occurred));
    let notice = by_occurrence
        .corrections
        .iter()
        .find(|n| n.entry.reference == key)
        .expect("the notice of the late reservation");
    assert_eq!(notice.corrects, line.entry.period);
    assert_eq!(
        notice.closing_after.available,
        notice.closing_before.available - 50
    );
    let on_time_key = format!("{on_time}.reserve_credit");
    let on_time_line = by_occurrence
        .lines
        .iter()
        .find(|l| l.entry.reference == on_time_key)
        .expect("the first reservation");
    assert!(!on_time_line.late);

    // The late entry's period, by occurrence: backfilled with it. By booking: not.
    let period = line.entry.period;
    let (from, to) = (period.start.to_string(), period.end.to_string());
    let span = ["--from", from.as_str(), "--to", to.as_str()];
    let occurred_then = statement(&system, &[&["--by", "occurred"][..], &span].concat());
    assert!(occurred_then.lines.iter().any(|l| l.entry.reference == key));
    let booked_then = statement(&system, &[&["--by", "booked"][..], &span].concat());
    assert!(!booked_then.lines.iter().any(|l| l.entry.reference == key));
    // By booking, from the close on: there it is, flagged, with its notice.
    let after_close = close.to_string();
    let booked_later = statement(&system, &["--by", "booked", "--from", &after_close]);
    assert!(
        booked_later
            .lines
            .iter()
            .any(|l| l.entry.reference == key && l.late)
    );
    assert!(
        !booked_later
            .lines
            .iter()
            .any(|l| l.entry.reference == on_time_key)
    );
    assert_eq!(booked_later.corrections.len(), 1);
    let text = system.cli(&["account", "statement", "pass", "--by", "occurred"]);
    assert!(
        text.contains("correction: reserve 50") && text.contains("late: booked in"),
        "{text}"
    );
}
