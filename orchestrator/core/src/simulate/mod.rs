//! Deterministic simulation of a definition: the pure core against model participants
//! derived from the catalogue, with faults injected, checked against the guarantees.
//!
//! Each schedule runs one saga in a [world](world) whose every choice comes from a [`Tape`]:
//! which message is delivered next (reordering), whether it is lost, duplicated or delayed
//! (so that replies come after their timeout and compensations before their command),
//! whether the orchestrator crashes before an append or between an append and its publish,
//! and whether a participant refuses a command or fails for a while. After a bounded number
//! of steps the faults stop and the world is drained; then the [guarantees](Guarantee) are
//! checked: the saga ended Completed, Compensated or Stuck with a reason; compensations ran
//! newest first and never past the pivot; no effect was applied twice; a compensated saga
//! left no effect and a completed one every effect; the deadline was kept.
//!
//! A failing schedule is shrunk to the fewest choices that still break the same guarantee,
//! and printed with its seed as a [`Schedule`] that [`replay`] runs again, event by event.
//! No NATS, no database, no clock: thousands of schedules a second.
//!
//! ```
//! use saga_core::simulate::{self, Settings};
//! use saga_core::{Catalogue, Definition};
//!
//! let catalogue = Catalogue::from_toml("participants.toml", r#"
//!     [account.ReserveCredit]
//!     kind = "forward"
//!     input = { amount = "integer" }
//!     [account.ReleaseCredit]
//!     kind = "compensation"
//! "#).unwrap();
//! let def = Definition::parse("d.toml", r#"
//!     [saga]
//!     name = "d"
//!     version = 1
//!     [input]
//!     amount = "integer"
//!     [[step]]
//!     name = "reserve"
//!     participant = "account"
//!     command = "ReserveCredit"
//!     compensation = "ReleaseCredit"
//! "#, Some(&catalogue)).unwrap();
//! let report = simulate::simulate(&def, &catalogue, &Settings { seeds: 200, ..Settings::default() }).unwrap();
//! assert_eq!(report.schedules, 200);
//! assert!(report.failure.is_none());
//! ```

mod check;
mod faults;
mod participants;
pub mod sample;
mod tape;
mod world;

pub use check::{Guarantee, Violation};
pub use faults::{Fault, Faults};
pub use tape::{Schedule, Tape};

use crate::definition::{Catalogue, Definition};
use crate::event::Occurred;
use crate::{Input, Rejection, SagaState, Status};
use saga_protocol::Timestamp;
use std::collections::BTreeMap;
use world::World;

/// The decision function simulated: [`crate::decide`], or a variant of it in a test.
pub type Decide = fn(&Definition, &SagaState, Input, Timestamp) -> Result<Vec<Occurred>, Rejection>;

/// Steps of a schedule with faults; then the world is drained without them.
const FAULTY_STEPS: usize = 400;
/// Steps of the drain before the saga counts as never settling.
const DRAIN_STEPS: usize = 20_000;
/// Replays spent shrinking one failure.
const SHRINK_RUNS: usize = 4_000;

/// How to simulate.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Schedules to run, seeds `first_seed..first_seed + seeds`.
    pub seeds: u64,
    pub first_seed: u64,
    pub faults: Faults,
    /// The saga's input; made up from the declared fields when `None`.
    pub input: Option<serde_json::Value>,
    pub decide: Decide,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seeds: 1_000,
            first_seed: 0,
            faults: Faults::default(),
            input: None,
            decide: crate::decide,
        }
    }
}

/// Why a definition cannot be simulated at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetupError {
    #[error("cannot make up an input for {saga} ({why}): give one with --input")]
    Input { saga: String, why: String },
    #[error("step `{step}` runs {participant}.{command}, which the catalogue does not list")]
    Uncatalogued {
        step: String,
        participant: String,
        command: String,
    },
}

/// One schedule, run.
#[derive(Debug, Clone)]
pub struct Run {
    pub status: Status,
    pub violations: Vec<Violation>,
    /// The choices it made, to replay it.
    pub schedule: Schedule,
    /// Events the saga recorded.
    pub events: usize,
    /// What happened, line by line (when run by [`replay`]).
    pub trace: Vec<String>,
}

/// A failing schedule, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    /// The guarantee broken first by the shrunk schedule.
    pub violation: Violation,
    pub schedule: Schedule,
    /// Choices of the schedule as it was found, before shrinking.
    pub found_with: usize,
    pub trace: Vec<String>,
}

/// What a simulation of one definition found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `name vN`.
    pub definition: String,
    /// Schedules run (up to and with the first failing one).
    pub schedules: u64,
    /// How the sagas ended, by status.
    pub ended: BTreeMap<&'static str, u64>,
    /// Events recorded over all schedules.
    pub events: u64,
    pub failure: Option<Failure>,
}

/// Runs `settings.seeds` schedules of `def`, and shrinks the first one that breaks a
/// guarantee.
pub fn simulate(
    def: &Definition,
    catalogue: &Catalogue,
    settings: &Settings,
) -> Result<Report, SetupError> {
    let sim = Simulation::new(def, catalogue, settings)?;
    let mut report = Report {
        definition: format!("{} v{}", def.name, def.version),
        schedules: 0,
        ended: BTreeMap::new(),
        events: 0,
        failure: None,
    };
    for seed in settings.first_seed..settings.first_seed.saturating_add(settings.seeds) {
        let run = sim.run(seed, Tape::seeded(seed), false);
        report.schedules += 1;
        report.events += run.events as u64;
        *report.ended.entry(run.status.as_str()).or_default() += 1;
        if let Some(first) = run.violations.first() {
            let found_with = run.schedule.len();
            let schedule = sim.shrink(seed, run.schedule, first.guarantee);
            let again = sim.run(seed, Tape::replay(&schedule), true);
            let violation = again
                .violations
                .iter()
                .find(|v| v.guarantee == first.guarantee)
                .cloned()
                .unwrap_or_else(|| first.clone());
            report.failure = Some(Failure {
                seed,
                violation,
                schedule,
                found_with,
                trace: again.trace,
            });
            break;
        }
    }
    Ok(report)
}

/// Runs the schedule seed `seed` draws, with its trace.
pub fn run_seed(
    def: &Definition,
    catalogue: &Catalogue,
    settings: &Settings,
    seed: u64,
) -> Result<Run, SetupError> {
    let sim = Simulation::new(def, catalogue, settings)?;
    Ok(sim.run(seed, Tape::seeded(seed), true))
}

/// Runs `schedule` (of seed `seed`, which names the saga) again, with its trace.
pub fn replay(
    def: &Definition,
    catalogue: &Catalogue,
    settings: &Settings,
    seed: u64,
    schedule: &Schedule,
) -> Result<Run, SetupError> {
    let sim = Simulation::new(def, catalogue, settings)?;
    Ok(sim.run(seed, Tape::replay(schedule), true))
}

/// A definition ready to simulate: checked against the catalogue, with its input.
struct Simulation<'a> {
    def: &'a Definition,
    catalogue: &'a Catalogue,
    settings: &'a Settings,
    input: serde_json::Value,
}

impl<'a> Simulation<'a> {
    fn new(
        def: &'a Definition,
        catalogue: &'a Catalogue,
        settings: &'a Settings,
    ) -> Result<Self, SetupError> {
        for step in def.steps.iter().filter(|s| s.signal.is_none()) {
            let commands = std::iter::once(&step.command).chain(step.compensation.as_ref());
            for command in commands {
                if catalogue.command(&step.participant, command).is_none() {
                    return Err(SetupError::Uncatalogued {
                        step: step.name.clone(),
                        participant: step.participant.clone(),
                        command: command.clone(),
                    });
                }
            }
        }
        let input = match &settings.input {
            Some(input) => input.clone(),
            None => sample::object(&def.input, &serde_json::Value::Null, &def.name, false),
        };
        let input = def.check_input(&input).map_err(|why| SetupError::Input {
            saga: def.name.clone(),
            why,
        })?;
        Ok(Simulation {
            def,
            catalogue,
            settings,
            input,
        })
    }

    /// One schedule: start, steps with faults, the drain, the checks at the end.
    fn run(&self, seed: u64, mut tape: Tape, traced: bool) -> Run {
        let saga_id = uuid::Uuid::from_u64_pair(0x5a6a_0000_0000_7000, seed);
        let (decide, faults) = (self.settings.decide, &self.settings.faults);
        let mut world = World::new(self.def, self.catalogue, decide, faults, saga_id, traced);
        world.start(self.input.clone(), &mut tape);
        let mut steps = 0;
        while steps < FAULTY_STEPS && world.step(&mut tape) {
            steps += 1;
        }
        tape.hush();
        let mut drained = 0;
        while world.step(&mut tape) {
            drained += 1;
            if drained >= DRAIN_STEPS {
                let status = world.state.status.as_str();
                world.violations.push(Violation::new(
                    Guarantee::Ends,
                    format!(
                        "the saga is still {status} and moving after {DRAIN_STEPS} steps without faults"
                    ),
                ));
                break;
            }
        }
        if drained < DRAIN_STEPS {
            check::end(&mut world);
        }
        Run {
            status: world.state.status,
            violations: world.violations,
            schedule: tape.schedule(),
            events: world.log.len(),
            trace: world.trace.unwrap_or_default(),
        }
    }

    /// The simplest schedule found that still breaks `guarantee`: choices dropped or
    /// lowered while it does, until no single change keeps it failing.
    fn shrink(&self, seed: u64, mut best: Schedule, guarantee: Guarantee) -> Schedule {
        let mut runs = 0;
        'simpler: loop {
            for candidate in best.simpler() {
                runs += 1;
                if runs > SHRINK_RUNS {
                    break 'simpler;
                }
                let run = self.run(seed, Tape::replay(&candidate), false);
                if run.violations.iter().any(|v| v.guarantee == guarantee) {
                    best = run.schedule;
                    continue 'simpler;
                }
            }
            break;
        }
        best
    }
}
