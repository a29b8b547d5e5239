//! The one error type of the claims language: located, with a hint.

use std::fmt;

use super::ast::Span;

/// A problem in a claim expression: where it is, what is wrong and, when there is one, how to
/// fix it (often a did-you-mean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    /// The offending text, as bytes of the expression (the `holds:` string).
    pub span: Span,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The fix, when one can be said: `did you mean ...?`, the names that exist, an example.
    pub help: Option<String>,
}

impl ClaimError {
    /// An error at `span` without help.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self { span, message: message.into(), help: None }
    }

    /// The same error with `help`.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The same error with its span moved `by` bytes, for an expression that starts at byte
    /// `by` of a larger text (the experiment file).
    pub fn shifted(mut self, by: usize) -> Self {
        self.span = self.span.shifted(by);
        self
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (bytes {}..{})", self.message, self.span.start, self.span.end)?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ClaimError {}

/// `did you mean `x`? WHAT: a, b, c` (or just the list when nothing is close), over `candidates`.
pub(crate) fn did_you_mean<S: AsRef<str>>(name: &str, candidates: &[S], what: &str) -> String {
    let names: Vec<&str> = candidates.iter().map(|s| s.as_ref()).collect();
    crate::plugin::registry::suggestion(name, &names, what)
}
