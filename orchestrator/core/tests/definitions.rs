//! The definition language: every file in `sagas/` is valid against the catalogue, and each
//! broken file of the corpus (`tests/corpus/*.toml`) gives exactly the diagnostics in its
//! snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use saga_core::{Catalogue, Definition};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn catalogue() -> Catalogue {
    Catalogue::from_file(&root().join("sagas/participants.toml")).unwrap()
}

#[test]
fn every_saga_in_the_repository_is_valid() {
    let catalogue = catalogue();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("sagas")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().unwrap() != "participants.toml"
        {
            let def =
                Definition::from_file(&path, Some(&catalogue)).unwrap_or_else(|e| panic!("{e}"));
            names.push(format!("{} v{}", def.name, def.version));
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "approved_order v1",
            "book_seats v1",
            "express_order v1",
            "place_order v1"
        ]
    );
}

#[test]
fn each_broken_definition_gives_its_diagnostics() {
    let catalogue = catalogue();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        let file = format!("corpus/{name}.toml");
        let errors = Definition::parse(&file, &src, Some(&catalogue)).expect_err(&name);
        let rendered = saga_core::definition::render(&errors, &src);
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn a_definition_that_is_not_utf8_is_refused_at_its_first_bad_byte() {
    let mut bytes = b"[saga]\nname = \"d\"\n# caf".to_vec();
    bytes.extend([0xE9, b'\n']);
    let error = saga_core::definition::source_text("latin1.toml", bytes).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @"latin1.toml:3:6: error: byte 0xE9 is not UTF-8: save the definition as UTF-8");
}

#[test]
fn a_catalogue_says_which_compensation_undoes_which_command_and_checks_it() {
    let catalogue = catalogue();
    assert_eq!(
        catalogue.pairs("order"),
        [
            ("ApproveOrder", None),
            ("ConfirmOrder", None),
            ("CreateOrder", Some("CancelOrder"))
        ]
    );
    let src = r#"
[p.Do]
kind = "forward"
undoes = "Undo"

[p.Undo]
kind = "compensation"
undoes = "Missing"

[p.Again]
kind = "compensation"
undoes = "Undo"
"#;
    let errors = Catalogue::from_toml("c.toml", src).unwrap_err();
    let rendered: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
    insta::assert_snapshot!(rendered.join("\n"), @r"
    c.toml:12:10: error: p.Undo, which p.Again undoes, is not a forward command
    c.toml:4:10: error: p.Do is a forward command: only a compensation undoes one
    c.toml:8:10: error: p has no command `Missing` for p.Undo to undo
    ");
}
