//! `saga simulate [definitions…]`: every definition run against model participants under
//! injected faults ([`saga_core::simulate`]), `--seeds` schedules each. Prints a table of
//! how the sagas ended; for a schedule that breaks a guarantee, the smallest one found, event
//! by event, and the command that replays it. Exit code 1 when a guarantee was broken.

use super::{Error, Output, SimulateArgs};
use crate::validate;
use saga_core::simulate::{self, Report, Settings};
use saga_core::{Catalogue, Definition};
use saga_orchestrator::runtime::CATALOGUE_FILE;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

pub fn run(args: SimulateArgs) -> Result<ExitCode, Error> {
    quiet_on_closed_pipe(run_to(args, &mut std::io::stdout().lock()))
}

/// A reader that stops reading (`saga simulate … | head`) ends the output, not in an error.
pub(crate) fn quiet_on_closed_pipe(result: Result<ExitCode, Error>) -> Result<ExitCode, Error> {
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn run_to(args: SimulateArgs, out: &mut impl Write) -> Result<ExitCode, Error> {
    let files = validate::files(&args.paths)?;
    let catalogue_path =
        validate::catalogue_path(args.catalogue.as_deref(), &files).ok_or_else(|| {
            format!("no {CATALOGUE_FILE} beside the definitions: give one with --catalogue")
        })?;
    let catalogue =
        Catalogue::from_file(&catalogue_path).map_err(|e| render(&catalogue_path, &e))?;
    let mut defs = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.file_name() != catalogue_path.file_name())
    {
        let def = Definition::from_file(file, Some(&catalogue)).map_err(|e| render(file, &e))?;
        defs.push((file.clone(), def));
    }
    let input = match &args.input {
        Some(text) => {
            Some(serde_json::from_str(text).map_err(|e| format!("--input is not JSON: {e}"))?)
        }
        None => None,
    };
    let settings = Settings {
        seeds: args.seeds,
        first_seed: args.seed,
        faults: args.faults.clone(),
        input,
        ..Settings::default()
    };
    if args.replay.is_some() || args.trace {
        let [(file, def)] = defs.as_slice() else {
            return Err(format!(
                "--replay and --trace run one schedule of one definition; {} given",
                defs.len()
            )
            .into());
        };
        let run = match &args.replay {
            Some(schedule) => simulate::replay(def, &catalogue, &settings, args.seed, schedule)?,
            None => simulate::run_seed(def, &catalogue, &settings, args.seed)?,
        };
        writeln!(
            out,
            "{} ({}), seed {}, faults {}, schedule {}:",
            file.display(),
            saga(def),
            args.seed,
            settings.faults,
            run.schedule
        )?;
        for line in &run.trace {
            writeln!(out, "  {line}")?;
        }
        writeln!(out, "ended {}", run.status.as_str())?;
        for violation in &run.violations {
            writeln!(out, "broken: {violation}")?;
        }
        return Ok(if run.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    simulate_all(&defs, &catalogue, &settings, args.format, out)
}

/// Simulates each definition and prints what was found; failure when a guarantee broke.
pub(crate) fn simulate_all(
    defs: &[(PathBuf, Definition)],
    catalogue: &Catalogue,
    settings: &Settings,
    format: Output,
    out: &mut impl Write,
) -> Result<ExitCode, Error> {
    let mut reports = Vec::new();
    for (file, def) in defs {
        let started = Instant::now();
        let report = simulate::simulate(def, catalogue, settings)?;
        reports.push((file, report, started.elapsed()));
    }
    let failed = reports.iter().any(|(_, r, _)| r.failure.is_some());
    match format {
        Output::Json => {
            let definitions: Vec<serde_json::Value> = reports
                .iter()
                .map(|(file, r, took)| json(file, r, took.as_secs_f64(), settings))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "ok": !failed, "faults": settings.faults.to_string(), "definitions": definitions })
            )?;
        }
        Output::Text => {
            let mut table = crate::table([
                "definition",
                "schedules",
                "completed",
                "compensated",
                "stuck",
                "events",
                "per second",
                "result",
            ]);
            for (_, r, took) in &reports {
                let ended = |status: &str| r.ended.get(status).copied().unwrap_or(0).to_string();
                let rate = r.schedules as f64 / took.as_secs_f64().max(1e-9);
                table.add_row([
                    r.definition.clone(),
                    r.schedules.to_string(),
                    ended("completed"),
                    ended("compensated"),
                    ended("stuck"),
                    r.events.to_string(),
                    format!("{rate:.0}"),
                    match &r.failure {
                        None => "ok".to_string(),
                        Some(f) => format!("broken: {}", f.violation.guarantee.name()),
                    },
                ]);
            }
            writeln!(out, "faults: {}", settings.faults)?;
            writeln!(out, "{}", table.trim_fmt())?;
            for (file, r, _) in &reports {
                if let Some(f) = &r.failure {
                    writeln!(out)?;
                    writeln!(
                        out,
                        "{}: seed {} breaks {}",
                        r.definition, f.seed, f.violation
                    )?;
                    writeln!(
                        out,
                        "the smallest failing schedule found ({} choices off the quiet path, from {}):",
                        f.schedule.len(),
                        f.found_with
                    )?;
                    for line in &f.trace {
                        writeln!(out, "  {line}")?;
                    }
                    writeln!(
                        out,
                        "replay: {}",
                        replay_command(file, f.seed, &f.schedule, settings)
                    )?;
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn saga(def: &Definition) -> String {
    format!("{} v{}", def.name, def.version)
}

fn replay_command(
    file: &Path,
    seed: u64,
    schedule: &simulate::Schedule,
    settings: &Settings,
) -> String {
    format!(
        "saga simulate {} --seed {seed} --faults {} --replay {schedule}",
        file.display(),
        settings.faults
    )
}

fn json(file: &Path, r: &Report, seconds: f64, settings: &Settings) -> serde_json::Value {
    let failure = r.failure.as_ref().map(|f| {
        serde_json::json!({
            "seed": f.seed,
            "guarantee": f.violation.guarantee.name(),
            "detail": f.violation.detail,
            "schedule": f.schedule.to_string(),
            "replay": replay_command(file, f.seed, &f.schedule, settings),
            "trace": f.trace,
        })
    });
    serde_json::json!({
        "file": file,
        "saga": r.definition,
        "schedules": r.schedules,
        "ended": r.ended,
        "events": r.events,
        "seconds": seconds,
        "failure": failure,
    })
}

/// Definition errors as `saga validate` prints them.
fn render(file: &Path, errors: &saga_core::Errors) -> String {
    let src = std::fs::read_to_string(file).unwrap_or_default();
    saga_core::definition::render(errors, &src)
}
