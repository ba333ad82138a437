//! Colours for people at a terminal: only when stdout is one and `NO_COLOR` is unset, so pipes,
//! files and `--output json` get plain text.
//!
//! ```ignore
//! println!("{}", style::status("COMPENSATED")); // yellow at a terminal, plain in a pipe
//! ```

use std::io::IsTerminal;

/// Whether to colour what goes to stdout.
fn enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// The colour of a status: green done, yellow undone, red needs someone, cyan in progress.
fn colour(status: &str) -> Option<(&'static str, comfy_table::Color)> {
    use comfy_table::Color;
    match status.to_ascii_lowercase().as_str() {
        "completed" | "succeeded" => Some(("32", Color::Green)),
        "compensated" | "compensating" => Some(("33", Color::Yellow)),
        "stuck" | "aborted" | "rejected" | "unknown" => Some(("31", Color::Red)),
        "running" | "retrying" => Some(("36", Color::Cyan)),
        _ => None,
    }
}

/// `status` coloured by what it means, for a line of text.
pub(crate) fn status(status: &str) -> String {
    match colour(status) {
        Some((ansi, _)) if enabled() => format!("\u{1b}[1;{ansi}m{status}\u{1b}[0m"),
        _ => status.to_string(),
    }
}

/// `status` as a table cell; the table applies the colour only at a terminal.
pub(crate) fn status_cell(status: &str) -> comfy_table::Cell {
    let cell = comfy_table::Cell::new(status);
    match colour(status) {
        Some((_, fg)) if enabled() => cell.fg(fg),
        _ => cell,
    }
}
