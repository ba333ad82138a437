//! Where a problem is: file, line, column and span, for diagnostics with a caret.

use serde::Serialize;
use std::fmt;
use std::ops::Range;

/// One problem in a definition or catalogue file.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct DefinitionError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Byte range in the source, for a caret under the offending text.
    pub span: Range<usize>,
    pub message: String,
    /// What to do about it, when something helps (e.g. "did you mean `pivot`?").
    pub hint: Option<String>,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl DefinitionError {
    /// A problem with the file as a whole (cannot be read, for instance).
    pub fn whole_file(file: &str, message: String) -> Self {
        DefinitionError {
            file: file.into(),
            line: 1,
            column: 1,
            span: 0..0,
            message,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found, in source order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Errors(pub Vec<DefinitionError>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Turns byte offsets of one source into errors with line and column.
pub struct SourceMap<'a> {
    file: &'a str,
    src: &'a str,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a str, src: &'a str) -> Self {
        SourceMap { file, src }
    }

    /// An error at `span`.
    pub fn error(&self, span: Range<usize>, message: String) -> DefinitionError {
        let start = span.start.min(self.src.len());
        let before = &self.src[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        DefinitionError {
            file: self.file.into(),
            line,
            column,
            span,
            message,
            hint: None,
        }
    }

    /// A TOML syntax or shape error, with "did you mean" for an unknown key.
    pub fn toml_error(&self, e: &toml::de::Error) -> DefinitionError {
        let message = e.message().trim().to_string();
        let err = self.error(e.span().unwrap_or(0..0), message.clone());
        match did_you_mean(&message) {
            Some(hint) => err.with_hint(hint),
            None => err,
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected name.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    closest(unknown, candidates.iter().copied()).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate most like `name`, if one is like it at all.
pub fn closest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Renders `errors` of `src` for a person: for each, `file:line:column: error: message`,
/// then the source line with a caret under the offending text, and the hint.
pub fn render(errors: &Errors, src: &str) -> String {
    render_with(errors, src, &annotate_snippets::Renderer::plain())
}

/// [`render`] with colours for a terminal.
pub fn render_styled(errors: &Errors, src: &str) -> String {
    render_with(errors, src, &annotate_snippets::Renderer::styled())
}

fn render_with(errors: &Errors, src: &str, renderer: &annotate_snippets::Renderer) -> String {
    use annotate_snippets::{AnnotationKind, Group, Level, Snippet};
    let mut out = String::new();
    for e in &errors.0 {
        out.push_str(&format!(
            "{}:{}:{}: error: {}\n",
            e.file, e.line, e.column, e.message
        ));
        let end = e.span.end.min(src.len());
        let start = e.span.start.min(end);
        let mut group = Group::with_level(Level::ERROR).element(
            Snippet::source(src)
                .path(e.file.as_str())
                .annotation(AnnotationKind::Primary.span(start..end)),
        );
        if let Some(hint) = &e.hint {
            group = group.element(Level::HELP.message(hint.as_str()));
        }
        out.push_str(&renderer.render(&[group]));
        out.push('\n');
    }
    out
}
