//! The passbook: an account's statement, each entry with the running balance after it, read by
//! either of its two clocks, over periods that close, with a correction notice for every entry
//! booked after its period closed.
//!
//! Every entry has two times. It **occurred** when the orchestrator sent the command (a
//! reservation's or a release's `requested_at`; an opening or a deposit occurs when it is
//! booked), and it was **booked** when its row of `account_events` was written. A command held
//! up on its way (the participant down, a backlog) occurs before it is booked.
//!
//! Time is cut into periods of [`Periods::length`], aligned to [`Periods::cutoff`] past midnight
//! UTC (days that end at 17:00: length `24h`, cut-off `17h`). A period closes
//! [`Periods::max_delay`] after it ends. An entry that occurred in a period and is booked before
//! that period closes belongs to it. One booked later is *late*: it is booked in the period open
//! when it arrives, and a [`Notice`] is raised against the closed period, saying how that
//! period's closing balance changes.
//!
//! The statement by occurrence is backfilled: a late entry shows where it occurred, and the
//! running balances after it change. The statement by booking is not: the entry shows where it
//! was booked, and nothing reported before it changes. Both are folds of the log, which is never
//! rewritten. A closed period's statement, as it stood at the close, is still there: the entries
//! that occurred in it and were booked before the close.
//!
//! ```
//! use saga_participants::account::events::AccountEvent;
//! use saga_participants::account::passbook::{self, Clock, Periods};
//! use saga_protocol::Timestamp;
//! use std::time::Duration;
//!
//! let periods = Periods { length: Duration::from_secs(60), cutoff: Duration::ZERO, max_delay: Duration::from_secs(10) };
//! let log = [
//!     (1, AccountEvent::AccountOpened { account_id: "a".into() }, Timestamp(0)),
//!     (2, AccountEvent::FundsDeposited { amount: 100, operation_id: "open".into() }, Timestamp(0)),
//!     // Sent at 50 s, booked at 75 s: after its period (0–60 s) closed at 70 s.
//!     (3, AccountEvent::CreditReserved { amount: 30, effect_key: "s.reserve".into(), requested_at: Timestamp(50_000) }, Timestamp(75_000)),
//! ];
//! let entries = passbook::entries(&log, &periods);
//! let by_occurrence = passbook::statement("a", &entries, &periods, Clock::Occurred, None, Some(Timestamp(60_000)));
//! assert_eq!(by_occurrence.closing.available, 70);
//! let by_booking = passbook::statement("a", &entries, &periods, Clock::Booked, None, Some(Timestamp(60_000)));
//! assert_eq!(by_booking.closing.available, 100);
//! assert_eq!(by_occurrence.corrections[0].closing_after.available, 70);
//! ```

use super::events::AccountEvent;
use saga_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A statement's period length unless set otherwise: a day.
pub const DEFAULT_LENGTH: Duration = Duration::from_secs(24 * 3600);
/// How long after its end a period stays open for entries that occurred in it, by default.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(3600);

/// Which time a statement orders and selects entries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// When the entry occurred: late entries are backfilled.
    Occurred,
    /// When the entry was booked: what was reported stays as it was.
    Booked,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Occurred => "occurred",
            Clock::Booked => "booked",
        })
    }
}

impl std::str::FromStr for Clock {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "occurred" => Ok(Clock::Occurred),
            "booked" => Ok(Clock::Booked),
            other => Err(format!(
                "`{other}` is not a clock: use `occurred` (when it happened) or `booked` (when it was booked)"
            )),
        }
    }
}

/// How time is cut into statement periods (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// Each period's length (a zero length is read as a millisecond).
    pub length: Duration,
    /// Where periods start, past midnight UTC (taken modulo the length).
    pub cutoff: Duration,
    /// How long after its end a period still takes the entries that occurred in it.
    pub max_delay: Duration,
}

impl Default for Periods {
    fn default() -> Self {
        Periods {
            length: DEFAULT_LENGTH,
            cutoff: Duration::ZERO,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Periods {
    /// The period `at` falls in.
    pub fn period_of(&self, at: Timestamp) -> Period {
        let length = millis(self.length).max(1);
        let cutoff = millis(self.cutoff) % length;
        let start = cutoff.saturating_add(at.0.saturating_sub(cutoff).div_euclid(length) * length);
        Period {
            start: Timestamp(start),
            end: Timestamp(start.saturating_add(length)),
        }
    }

    /// When `period` closes: its end plus the maximum delay.
    pub fn closes_at(&self, period: Period) -> Timestamp {
        period.end.plus(self.max_delay)
    }
}

/// A statement period, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.start, self.end)
    }
}

/// Funds at a point of a statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Funds that can be reserved.
    pub available: i64,
    /// Funds held by reservations.
    pub reserved: i64,
}

impl Balance {
    fn after(self, entry: &Entry) -> Balance {
        Balance {
            available: self.available + entry.available,
            reserved: self.reserved + entry.reserved,
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "available {}, reserved {}",
            self.available, self.reserved
        )
    }
}

/// One entry of the passbook: an event of the account's log with both its clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The event's sequence in the account's log.
    pub sequence: i64,
    /// `opened`, `deposit`, `reserve` or `release`.
    pub kind: String,
    /// A reservation's or release's effect key, a deposit's operation id, the opened account.
    pub reference: String,
    /// How much it moved.
    pub amount: i64,
    /// The change to the available funds (a reservation takes from them).
    pub available: i64,
    /// The change to the reserved funds.
    pub reserved: i64,
    pub occurred_at: Timestamp,
    pub booked_at: Timestamp,
    /// The period it occurred in.
    pub period: Period,
    /// The period it was booked in: `period`, unless it was booked after `period` closed.
    pub booked_in: Period,
}

impl Entry {
    /// Whether it was booked after the period it occurred in had closed.
    pub fn late(&self) -> bool {
        self.booked_in != self.period
    }

    fn at(&self, clock: Clock) -> Timestamp {
        match clock {
            Clock::Occurred => self.occurred_at,
            Clock::Booked => self.booked_at,
        }
    }
}

/// The passbook entries of an account's log, given as `(sequence, event, booked at)`.
pub fn entries(log: &[(i64, AccountEvent, Timestamp)], periods: &Periods) -> Vec<Entry> {
    log.iter()
        .map(|(sequence, event, booked_at)| {
            let (kind, reference, available, reserved, occurred_at) = match event {
                AccountEvent::AccountOpened { account_id } => {
                    ("opened", account_id, 0, 0, *booked_at)
                }
                AccountEvent::FundsDeposited {
                    amount,
                    operation_id,
                } => ("deposit", operation_id, *amount, 0, *booked_at),
                AccountEvent::CreditReserved {
                    amount,
                    effect_key,
                    requested_at,
                } => ("reserve", effect_key, -amount, *amount, *requested_at),
                AccountEvent::CreditReleased {
                    amount,
                    effect_key,
                    requested_at,
                } => ("release", effect_key, *amount, -amount, *requested_at),
            };
            let period = periods.period_of(occurred_at);
            let booked_in = if *booked_at < periods.closes_at(period) {
                period
            } else {
                periods.period_of(*booked_at)
            };
            Entry {
                sequence: *sequence,
                kind: kind.to_string(),
                reference: reference.clone(),
                amount: available.abs().max(reserved.abs()),
                available,
                reserved,
                occurred_at,
                booked_at: *booked_at,
                period,
                booked_in,
            }
        })
        .collect()
}

/// An entry of a statement: the entry and the balance after it, in the statement's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    #[serde(flatten)]
    pub entry: Entry,
    pub balance: Balance,
    /// Booked after its period closed (its notice is among the statement's corrections).
    pub late: bool,
}

/// Raised by an entry booked after the period it occurred in had closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The late entry.
    pub entry: Entry,
    /// The closed period it corrects, and when that period closed.
    pub corrects: Period,
    pub closed_at: Timestamp,
    /// The closed period's closing balance by occurrence just before the entry was booked
    /// (as reported, with any earlier corrections), and with it.
    pub closing_before: Balance,
    pub closing_after: Balance,
    /// The same in a sentence.
    pub detail: String,
}

/// The correction notice of every late entry of `entries` (in booking order).
pub fn notices(entries: &[Entry], periods: &Periods) -> Vec<Notice> {
    entries
        .iter()
        .filter(|e| e.late())
        .map(|late| {
            let closed_at = periods.closes_at(late.period);
            let closing_before = entries
                .iter()
                .filter(|e| e.sequence < late.sequence && e.occurred_at < late.period.end)
                .fold(Balance::default(), Balance::after);
            let closing_after = closing_before.after(late);
            Notice {
                detail: format!(
                    "{} {} ({}) occurred at {} in the period {}, which closed at {closed_at}, \
                     and was booked at {} in the period {}: the closed period's closing balance \
                     by occurrence goes from {closing_before} to {closing_after}",
                    late.kind,
                    late.amount,
                    late.reference,
                    late.occurred_at,
                    late.period,
                    late.booked_at,
                    late.booked_in,
                ),
                entry: late.clone(),
                corrects: late.period,
                closed_at,
                closing_before,
                closing_after,
            }
        })
        .collect()
}

/// An account's statement over `[from, to)` by one clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub account_id: String,
    pub by: Clock,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The balance before the first line: every entry before `from` by this clock.
    pub opening: Balance,
    pub lines: Vec<Line>,
    pub closing: Balance,
    /// The notices of the late entries among the lines.
    pub corrections: Vec<Notice>,
}

/// The statement of `entries` over `[from, to)` (either end open when `None`) by `clock`: by
/// occurrence in the order the entries occurred, by booking in the order they were booked.
pub fn statement(
    account_id: &str,
    entries: &[Entry],
    periods: &Periods,
    clock: Clock,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Statement {
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    if clock == Clock::Occurred {
        ordered.sort_by_key(|e| (e.occurred_at, e.sequence));
    }
    let before = |e: &Entry| from.is_some_and(|from| e.at(clock) < from);
    let within = |e: &Entry| !before(e) && to.is_none_or(|to| e.at(clock) < to);
    let opening = ordered
        .iter()
        .filter(|e| before(e))
        .fold(Balance::default(), |b, e| b.after(e));
    let mut balance = opening;
    let mut lines = Vec::new();
    for entry in ordered.iter().filter(|e| within(e)) {
        balance = balance.after(entry);
        lines.push(Line {
            entry: (*entry).clone(),
            balance,
            late: entry.late(),
        });
    }
    let corrections = notices(entries, periods)
        .into_iter()
        .filter(|n| lines.iter().any(|l| l.entry.sequence == n.entry.sequence))
        .collect();
    Statement {
        account_id: account_id.to_string(),
        by: clock,
        from,
        to,
        opening,
        lines,
        closing: balance,
        corrections,
    }
}
