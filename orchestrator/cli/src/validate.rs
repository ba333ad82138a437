//! `saga validate <files or dirs>`: everything that can be known before deploy, each problem
//! as `file:line:column: error: message` with the source line, a caret and a hint.
//!
//! Exit code 0 when every file is valid, 1 otherwise; `--format json` for tools.

use super::{Error, Output, ValidateArgs};
use saga_core::{Catalogue, Definition, DefinitionError, Errors};
use saga_orchestrator::runtime::CATALOGUE_FILE;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files `paths` name: each file, and the `.toml` files of each directory, sorted.
pub(crate) fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The catalogue given, or the first `participants.toml` beside one of `files`.
pub(crate) fn catalogue_path(given: Option<&Path>, files: &[PathBuf]) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| {
        files
            .iter()
            .filter_map(|f| f.parent().map(|d| d.join(CATALOGUE_FILE)))
            .find(|c| c.exists())
    })
}

pub fn run(args: ValidateArgs) -> Result<ExitCode, Error> {
    let files = files(&args.paths)?;
    let catalogue_path = catalogue_path(args.catalogue.as_deref(), &files);
    let mut report: Vec<(PathBuf, String, Result<Definition, Errors>)> = Vec::new();
    let catalogue = match &catalogue_path {
        Some(path) => {
            let src = std::fs::read_to_string(path).unwrap_or_default();
            match Catalogue::from_file(path) {
                Ok(c) => Some(c),
                Err(e) => {
                    report.push((path.clone(), src, Err(e)));
                    None
                }
            }
        }
        None => None,
    };
    for file in files
        .iter()
        .filter(|f| Some(*f) != catalogue_path.as_ref() && !is_catalogue(f))
    {
        let (src, read) = match saga_core::definition::read_source(file) {
            Ok(src) => (src, Ok(())),
            Err(e) => (String::new(), Err(Errors(vec![e]))),
        };
        let result = if !file.exists() {
            Err(Errors(vec![DefinitionError::whole_file(
                &file.display().to_string(),
                "no such file".into(),
            )]))
        } else if let Err(e) = read {
            Err(e)
        } else {
            Definition::parse(&file.display().to_string(), &src, catalogue.as_ref())
        };
        report.push((file.clone(), src, result));
    }
    let failed = report.iter().any(|(_, _, r)| r.is_err());
    let saga = |d: &Definition| format!("{} v{}", d.name, d.version);
    match args.format {
        Output::Json => {
            let files: Vec<serde_json::Value> = report
                .iter()
                .map(|(path, _, r)| match r {
                    Ok(d) => serde_json::json!({"file": path, "valid": true, "saga": saga(d)}),
                    Err(e) => serde_json::json!({"file": path, "valid": false, "errors": e.0}),
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "valid": !failed, "files": files })
            );
        }
        Output::Text => {
            let color = std::io::stdout().is_terminal();
            for (path, src, r) in &report {
                match r {
                    Ok(d) => println!("{}: ok ({})", path.display(), saga(d)),
                    Err(e) if color => print!("{}", saga_core::definition::render_styled(e, src)),
                    Err(e) => print!("{}", saga_core::definition::render(e, src)),
                }
            }
            if catalogue.is_none() && catalogue_path.is_none() {
                println!(
                    "note: no {CATALOGUE_FILE} found: participants, commands and fields were not checked"
                );
            }
        }
    }
    if failed {
        return Ok(ExitCode::FAILURE);
    }
    if args.simulate {
        let Some(catalogue) = catalogue else {
            return Err(
                format!("--simulate needs the participants catalogue ({CATALOGUE_FILE})").into(),
            );
        };
        let defs: Vec<(PathBuf, Definition)> = report
            .into_iter()
            .filter_map(|(path, _, r)| r.ok().map(|d| (path, d)))
            .collect();
        let settings = saga_core::simulate::Settings {
            seeds: args.seeds,
            ..Default::default()
        };
        let out = &mut std::io::stdout().lock();
        let simulated =
            crate::simulate::simulate_all(&defs, &catalogue, &settings, args.format, out);
        return crate::simulate::quiet_on_closed_pipe(simulated);
    }
    Ok(ExitCode::SUCCESS)
}

fn is_catalogue(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == CATALOGUE_FILE)
}
