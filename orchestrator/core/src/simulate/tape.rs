//! The choices a schedule makes, recorded so that it can be replayed and shrunk.
//!
//! Every decision of a simulated run (is this message lost? which message comes next? does
//! the participant refuse?) is one number drawn from the tape. A seeded tape draws them from
//! a seeded generator and records them; a replayed tape reads them back, and reads 0 past
//! its end. 0 is always the quiet choice (no fault, the oldest message first), so a tape is
//! written down as its non-zero entries only (`position:value`, comma-separated, a fault as
//! `position:999`), and a shorter list is a simpler schedule.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;

/// How a fault is written in a schedule.
pub const FAULT: u32 = 999;

/// A source of choices: seeded (drawing and recording) or replayed.
#[derive(Debug, Clone)]
pub struct Tape {
    /// The choices to replay: position → value (absent: 0).
    source: BTreeMap<usize, u32>,
    /// The non-zero choices made so far, by position.
    used: BTreeMap<usize, u32>,
    /// The next position.
    position: usize,
    /// Draws new choices; `None` replays `source` (0 past them).
    rng: Option<Xoshiro256PlusPlus>,
    /// Whether faults may be chosen at all: off while the world is drained.
    quiet: bool,
}

impl Tape {
    /// A tape drawing from a generator seeded with `seed`: the same seed, the same choices.
    pub fn seeded(seed: u64) -> Self {
        Tape {
            source: BTreeMap::new(),
            used: BTreeMap::new(),
            position: 0,
            rng: Some(Xoshiro256PlusPlus::seed_from_u64(seed)),
            quiet: false,
        }
    }

    /// A tape that replays `schedule` (what [`Tape::schedule`] returned).
    pub fn replay(schedule: &Schedule) -> Self {
        Tape {
            source: schedule.0.clone(),
            used: BTreeMap::new(),
            position: 0,
            rng: None,
            quiet: false,
        }
    }

    /// From here on every choice is the quiet one, and nothing is recorded.
    pub(crate) fn hush(&mut self) {
        self.quiet = true;
    }

    /// A number in `0..n` (0 when `n` is 0 or 1, and always when hushed).
    pub(crate) fn pick(&mut self, n: u32) -> u32 {
        if self.quiet || n <= 1 {
            return 0;
        }
        let at = self.position;
        self.position += 1;
        let value = match &mut self.rng {
            Some(rng) => rng.random_range(0..n),
            None => self.source.get(&at).map_or(0, |v| v % n),
        };
        if value != 0 {
            self.used.insert(at, value);
        }
        value
    }

    /// Whether a fault of likelihood `per_mille` (out of 1,000) happens. The quiet choice, 0,
    /// is no fault; so is any value below `1000 - per_mille`. A fault is recorded as
    /// [`FAULT`], which replays as one at any likelihood.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        if per_mille == 0 || self.quiet {
            return false;
        }
        let at = self.position;
        self.position += 1;
        let threshold = 1000 - per_mille.min(1000);
        let fault = match &mut self.rng {
            Some(rng) => rng.random_range(0..1000) >= threshold,
            None => self.source.get(&at).is_some_and(|v| *v >= threshold),
        };
        if fault {
            self.used.insert(at, FAULT);
        }
        fault
    }

    /// The choices made, to replay: those a replay never reached are left out.
    pub fn schedule(&self) -> Schedule {
        Schedule(self.used.clone())
    }
}

/// A replayable schedule: the non-zero choices of a tape by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule(pub(crate) BTreeMap<usize, u32>);

impl Schedule {
    /// How many choices differ from the quiet path: what shrinking makes small.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The positions of its choices.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.keys().copied()
    }

    /// The schedule with the choice at `at` back to the quiet one.
    pub fn without(&self, at: usize) -> Schedule {
        let mut fewer = self.0.clone();
        fewer.remove(&at);
        Schedule(fewer)
    }

    /// Candidates one step simpler: the first half alone, each choice dropped (the later
    /// ones moved up), then each lowered.
    pub(crate) fn simpler(&self) -> Vec<Schedule> {
        let mut out = Vec::new();
        if self.0.len() > 1 {
            let half = self.0.iter().take(self.0.len() / 2);
            out.push(Schedule(half.map(|(a, v)| (*a, *v)).collect()));
        }
        // A dropped fault no longer draws its own choices (a delay draws its length), so
        // the choices after it are tried at their place and moved up by one to three.
        for at in self.0.keys() {
            for shift in 0..=3 {
                let fewer = self
                    .0
                    .iter()
                    .filter(|(p, _)| *p != at)
                    .map(|(p, v)| (if p > at { p - shift.min(p - at) } else { *p }, *v));
                out.push(Schedule(fewer.collect()));
            }
        }
        for (at, value) in self.0.iter().filter(|(_, v)| **v != FAULT) {
            // Towards the oldest message of a pick, the shortest delay.
            for lower in [value / 2, value.saturating_sub(1)] {
                if lower != 0 && lower < *value {
                    let mut less = self.0.clone();
                    less.insert(*at, lower);
                    out.push(Schedule(less));
                }
            }
        }
        out
    }
}

impl fmt::Display for Schedule {
    /// `3:998,7:1`; `-` for the quiet path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let parts: Vec<String> = self.0.iter().map(|(at, v)| format!("{at}:{v}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// Reads what [`Display`](fmt::Display) wrote.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "-" || s.is_empty() {
            return Ok(Schedule::default());
        }
        let mut choices = BTreeMap::new();
        for part in s.split(',') {
            let (at, value) = part.trim().split_once(':').ok_or_else(|| {
                format!("`{part}` is not `position:value` (a schedule reads like `3:998,7:1`)")
            })?;
            let at: usize = at
                .parse()
                .map_err(|_| format!("`{at}` in `{part}` is not a position"))?;
            let value: u32 = value
                .parse()
                .map_err(|_| format!("`{value}` in `{part}` is not a choice"))?;
            if value != 0 {
                choices.insert(at, value);
            }
        }
        Ok(Schedule(choices))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_tape_replays_its_own_choices() {
        let mut seeded = Tape::seeded(7);
        let drawn: Vec<u32> = (0..50).map(|i| seeded.pick(2 + i % 5)).collect();
        let schedule = seeded.schedule();
        let mut replayed = Tape::replay(&schedule);
        let again: Vec<u32> = (0..50).map(|i| replayed.pick(2 + i % 5)).collect();
        assert_eq!(drawn, again);
        // Past the end, the quiet choice.
        assert_eq!(replayed.pick(9), 0);
        let text = schedule.to_string();
        assert_eq!(text.parse::<Schedule>().unwrap(), schedule);
    }

    #[test]
    fn zero_is_no_fault_and_a_hushed_tape_makes_none() {
        let mut tape = Tape::replay(&"0:999,1:1,2:995".parse().unwrap());
        assert!(tape.chance(10), "999 is within the top 10 of 1000");
        assert!(!tape.chance(10), "1 is not");
        assert!(tape.chance(10), "995 is");
        assert!(!tape.chance(1000 - 1), "past the end: 0, no fault");
        // What a replay used, faults written the one way.
        assert_eq!(tape.schedule().to_string(), "0:999,2:999");
        let mut tape = Tape::seeded(1);
        tape.hush();
        assert!((0..100).all(|_| !tape.chance(1000)));
        assert!(tape.schedule().is_empty());
        assert!(
            "3".parse::<Schedule>()
                .unwrap_err()
                .contains("position:value")
        );
    }
}
