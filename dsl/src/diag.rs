//! Diagnostics: every problem found in an experiment file, rendered with miette.
//!
//! Problems are collected rather than returned one at a time, so that a user sees every
//! mistake in a file at once. Rendering uses miette's graphical handler with the uncoloured
//! unicode theme and a fixed width, so the text is stable (tests snapshot it).

use std::fmt;
use std::path::PathBuf;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

use crate::ast::Span;

/// An experiment file's text and the path it is shown under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as given by the caller (shown in diagnostics as is).
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
}

impl SourceFile {
    /// A source file from a path and text.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self { path: path.into(), text: text.into() }
    }

    /// The path for display.
    pub fn display_path(&self) -> String {
        self.path.display().to_string()
    }

    /// 1-based line and column (in characters) of byte offset `at`.
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        line_col(&self.text, at)
    }
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_char_boundary(text, at.min(text.len()));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One problem: a message, labelled spans in the file, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// What is wrong, naming the key.
    pub message: String,
    /// Spans in the source with a short label each; the first is the primary location.
    pub labels: Vec<(Span, String)>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diag {
    /// A problem with a message and no location.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), labels: Vec::new(), help: None }
    }

    /// Adds a labelled span.
    pub fn label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help text if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// The miette view of one [`Diag`] within its file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
struct Report {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label(collection)]
    labels: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
}

/// Every problem found in one experiment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    source: SourceFile,
    items: Vec<Diag>,
}

impl Diagnostics {
    /// No problems yet, in `source`.
    pub fn new(source: SourceFile) -> Self {
        Self { source, items: Vec::new() }
    }

    /// One problem in `source`.
    pub fn single(source: SourceFile, diag: Diag) -> Self {
        Self { source, items: vec![diag] }
    }

    /// Adds a problem.
    pub fn push(&mut self, diag: Diag) {
        self.items.push(diag);
    }

    /// Adds every problem of `other` (which must concern the same file).
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// The number of problems.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems.
    pub fn items(&self) -> &[Diag] {
        &self.items
    }

    /// The file the problems are in.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// `Err(self)` if there is any problem.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Renders every problem as plain text (no colour), with the file, line and column of each
    /// labelled span, followed by a count when there are several.
    pub fn render(&self) -> String {
        let handler =
            GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
        let path = self.source.display_path();
        let mut out = String::new();
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let mut message = d.message.clone();
            // The first label's location, in words, so the text is useful even when the
            // graphical frame is not read (e.g. when grepping logs).
            match d.labels.first() {
                Some((span, _)) => {
                    let (line, col) = self.source.line_col(span.start);
                    message = format!("{path}:{line}:{col}: {message}");
                }
                None => message = format!("{path}: {message}"),
            }
            let report = Report {
                message,
                src: NamedSource::new(path.clone(), self.source.text.clone()),
                labels: d
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(j, (span, label))| {
                        let text = (!label.is_empty()).then(|| label.clone());
                        if j == 0 {
                            LabeledSpan::new_primary_with_span(text, *span)
                        } else {
                            LabeledSpan::new_with_span(text, *span)
                        }
                    })
                    .collect(),
                help: d.help.clone(),
            };
            let mut text = String::new();
            if handler.render_report(&mut text, &report).is_err() {
                text = format!("{}\n", report.message);
            }
            out.push_str(&text);
        }
        if self.items.len() > 1 {
            out.push_str(&format!("\n{} problems in {path}\n", self.items.len()));
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}
