//! The simulation on the shipped definitions, and on cores that break a guarantee on
//! purpose: each must be caught, with a small schedule that replays to the same failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::simulate::{self, Guarantee, Settings};
use saga_core::{Catalogue, Definition, Event, Input, Occurred, Rejection, SagaState, decide};
use saga_protocol::{CommandKind, MessageId, Timestamp};
use std::path::Path;

fn sagas() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sagas")
}

fn catalogue() -> Catalogue {
    Catalogue::from_file(&sagas().join("participants.toml")).unwrap()
}

fn shipped(catalogue: &Catalogue) -> Vec<Definition> {
    let mut files: Vec<_> = std::fs::read_dir(sagas())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "participants.toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| Definition::from_file(f, Some(catalogue)).unwrap())
        .collect()
}

fn definition(name: &str, catalogue: &Catalogue) -> Definition {
    let file = sagas().join(format!("{name}.toml"));
    Definition::from_file(&file, Some(catalogue)).unwrap()
}

#[test]
fn every_shipped_definition_keeps_every_guarantee_under_every_fault() {
    let catalogue = catalogue();
    let defs = shipped(&catalogue);
    assert!(defs.len() >= 3, "the shipped definitions: {}", defs.len());
    for def in &defs {
        let settings = Settings {
            seeds: 10_000,
            ..Settings::default()
        };
        let report = simulate::simulate(def, &catalogue, &settings).unwrap();
        if let Some(failure) = &report.failure {
            panic!(
                "{}: seed {} breaks {}\n{}\nschedule {}",
                report.definition,
                failure.seed,
                failure.violation,
                failure.trace.join("\n"),
                failure.schedule
            );
        }
        assert_eq!(report.schedules, 10_000);
        // The faults were felt: sagas ended every way a saga ends by itself.
        for status in ["completed", "compensated", "stuck"] {
            assert!(
                report.ended.get(status).copied().unwrap_or(0) > 0,
                "{}: no saga ended {status}: {:?}",
                report.definition,
                report.ended
            );
        }
    }
}

#[test]
fn without_faults_every_schedule_is_the_quiet_path_and_completes() {
    let catalogue = catalogue();
    for def in shipped(&catalogue) {
        let settings = Settings {
            seeds: 20,
            faults: simulate::Faults::none(),
            ..Settings::default()
        };
        let report = simulate::simulate(&def, &catalogue, &settings).unwrap();
        assert!(report.failure.is_none(), "{:?}", report.failure);
        assert_eq!(
            report.ended.get("completed"),
            Some(&20),
            "{:?}",
            report.ended
        );
    }
}

/// A core that compensates oldest first: every compensation it starts is retargeted to the
/// earliest step that may have applied.
fn oldest_first(
    def: &Definition,
    state: &SagaState,
    input: Input,
    now: Timestamp,
) -> Result<Vec<Occurred>, Rejection> {
    let mut events = decide(def, state, input, now)?;
    let mut folded = state.clone();
    for occurred in &mut events {
        if let Event::CompensationStarted {
            step,
            attempt,
            command_id,
            participant,
            command,
            ..
        } = &mut occurred.event
            && *attempt == 1
        {
            let oldest = folded.steps.iter().find(|s| {
                s.status.may_have_applied()
                    && def.step(&s.name).is_some_and(|d| d.compensation.is_some())
            });
            if let Some(oldest) = oldest {
                let target = def.step(&oldest.name).unwrap();
                step.clone_from(&target.name);
                participant.clone_from(&target.participant);
                command.clone_from(target.compensation.as_ref().unwrap());
                *command_id =
                    MessageId::command(state.saga_id, &target.name, 1, CommandKind::Compensation);
            }
        }
        folded = saga_core::evolve(folded, occurred);
    }
    Ok(events)
}

#[test]
fn a_core_that_compensates_oldest_first_is_caught_with_a_minimal_schedule() {
    let catalogue = catalogue();
    let def = definition("place_order", &catalogue);
    let settings = Settings {
        seeds: 2_000,
        decide: oldest_first,
        ..Settings::default()
    };
    let report = simulate::simulate(&def, &catalogue, &settings).unwrap();
    let failure = report.failure.expect("the wrong order is found");
    assert_eq!(
        failure.violation.guarantee,
        Guarantee::ReverseOrder,
        "{failure:?}"
    );
    // Shrunk to a few choices, each of them needed: the quiet choice in place of any one of
    // them, and the order is right again.
    assert!(
        failure.schedule.len() <= 3,
        "{}\n{}",
        failure.schedule,
        failure.trace.join("\n")
    );
    assert!(failure.found_with >= failure.schedule.len());
    for at in failure.schedule.positions() {
        let fewer = failure.schedule.without(at);
        let run = simulate::replay(&def, &catalogue, &settings, failure.seed, &fewer).unwrap();
        assert!(
            run.violations
                .iter()
                .all(|v| v.guarantee != Guarantee::ReverseOrder),
            "choice {at} of {} is not needed",
            failure.schedule
        );
    }
    let trace = failure.trace.join("\n");
    assert!(
        trace.contains("answers rejected"),
        "a refusal starts the compensation:\n{trace}"
    );
    // The schedule printed replays to the same failure.
    let again =
        simulate::replay(&def, &catalogue, &settings, failure.seed, &failure.schedule).unwrap();
    assert_eq!(
        again.violations.first().map(|v| v.guarantee),
        Some(Guarantee::ReverseOrder)
    );
    assert_eq!(again.trace, failure.trace);
    // And the real core passes the same schedule.
    let real = Settings { decide, ..settings };
    let run = simulate::replay(&def, &catalogue, &real, failure.seed, &failure.schedule).unwrap();
    assert!(run.violations.is_empty(), "{:?}", run.violations);
}
