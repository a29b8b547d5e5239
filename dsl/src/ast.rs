//! The syntax tree shared by both front ends.
//!
//! The YAML and `.tlx` parsers both produce an [`Experiment`]; the checker, the formatter and
//! the `--set` overrides work on it without knowing which form it came from. Every name and
//! value carries the [`Span`] of its text so that diagnostics can point at it.

use std::collections::BTreeSet;

use serde_json::Value;

/// A byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end: end.max(start) }
    }

    /// An empty range at `at`.
    pub fn point(at: usize) -> Self {
        Self { start: at, end: at }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        miette::SourceSpan::new(s.start.into(), s.len())
    }
}

/// A value with the span of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with its span.
    pub fn new(node: T, span: Span) -> Self {
        Self { node, span }
    }
}

/// An experiment as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Experiment name.
    pub name: Spanned<String>,
    /// Free-text description.
    pub description: Option<Spanned<String>>,
    /// Root seed (0 when absent).
    pub seed: Option<Spanned<u64>>,
    /// Dynamic plugin libraries, as written.
    pub plugins: Vec<Spanned<String>>,
    /// Stages in file order.
    pub stages: Vec<StageAst>,
    /// The optional sweep.
    pub sweep: Option<SweepAst>,
    /// The claims about the results, in file order.
    pub claims: Vec<ClaimAst>,
    /// The parts of the file a front end could not read (empty for a file that parsed cleanly).
    pub gaps: Gaps,
}

/// What a front end left out of an [`Experiment`] because it could not read it.
///
/// Each left-out part has already been reported. The checker still checks the rest, so that one
/// report lists every independent problem of a file, and uses these records to keep quiet about
/// what only follows from a left-out part (a reference to a stage whose `kind` was missing is
/// not also "not a stage").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gaps {
    /// The experiment's name could not be read (the tree holds an empty placeholder).
    pub name: bool,
    /// The `stages` block was missing or could not be read.
    pub stages: bool,
    /// Stages written in the file but left out of the tree (e.g. a stage without `kind`).
    pub unread_stages: BTreeSet<String>,
    /// Stages whose `uses` could not be read.
    pub uses: BTreeSet<String>,
    /// Stages with a parameter (or the whole `with`) left out.
    pub params: BTreeSet<String>,
    /// Stages with an input connection (or the whole `inputs`) left out.
    pub inputs: BTreeSet<String>,
    /// Part of the sweep was left out.
    pub sweep: bool,
}

impl Gaps {
    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        *self == Gaps::default()
    }
}

impl Experiment {
    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageAst> {
        self.stages.iter().find(|s| s.name.node == name)
    }
}

/// One stage as written.
#[derive(Debug, Clone, PartialEq)]
pub struct StageAst {
    /// Stage name.
    pub name: Spanned<String>,
    /// Kind as written (checked against the known kinds later); absent only when the stage
    /// `extends` another, whose kind it then takes.
    pub kind: Option<Spanned<String>>,
    /// Plugin name (absent for rewind stages, and when it comes from the stage extended).
    pub uses: Option<Spanned<String>>,
    /// The stage whose kind, plugin, parameters and inputs this one takes where it does not
    /// write its own (`extends: dense`); see [`crate::extends`].
    pub extends: Option<Spanned<String>>,
    /// Parameters in file order.
    pub with: Vec<ParamAst>,
    /// Connected inputs in file order.
    pub inputs: Vec<InputAst>,
    /// The whole stage.
    pub span: Span,
}

impl StageAst {
    /// The kind as written, or `""` when the stage takes it from the stage it extends.
    pub fn kind_name(&self) -> &str {
        self.kind.as_ref().map_or("", |k| k.node.as_str())
    }

    /// The parameter called `key`.
    pub fn param(&self, key: &str) -> Option<&ParamAst> {
        self.with.iter().find(|p| p.key.node == key)
    }
}

/// One `key: value` parameter of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamAst {
    /// Parameter name.
    pub key: Spanned<String>,
    /// Value.
    pub value: Spanned<Value>,
    /// The `--set` argument that supplied the value, if it did not come from the file.
    pub set_by: Option<String>,
    /// The stage whose text holds the parameter, when this stage takes it through `extends`
    /// (set when `extends` is resolved; the spans are that stage's).
    pub inherited: Option<String>,
}

/// One input port connection.
#[derive(Debug, Clone, PartialEq)]
pub struct InputAst {
    /// Port name.
    pub port: Spanned<String>,
    /// Producing stages.
    pub refs: Vec<Spanned<String>>,
    /// Whether the stages were written as a list (`[a, b]`), even of one.
    pub list: bool,
    /// The whole connection.
    pub span: Span,
    /// The stage whose text holds the connection, when this stage takes it through `extends`
    /// (set when `extends` is resolved; the spans are that stage's).
    pub inherited: Option<String>,
}

/// The sweep block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepAst {
    /// `STAGE.PARAM` axes whose values are combined as a Cartesian product.
    pub grid: Vec<SweepAxis>,
    /// `STAGE.PARAM` axes whose values are paired index by index.
    pub zip: Vec<SweepAxis>,
    /// Number of repeats with root seeds `seed + 0 .. seed + n - 1`.
    pub seeds: Option<Spanned<u64>>,
    /// Random search: points drawn from distributions (they become zip rows when loaded).
    pub random: Option<RandomAst>,
    /// The whole block.
    pub span: Span,
}

/// `random`: `samples` points, each parameter drawn from its distribution with the seed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RandomAst {
    /// How many points to draw.
    pub samples: Option<Spanned<u64>>,
    /// The seed of the draws (0 when absent).
    pub seed: Option<Spanned<u64>>,
    /// The drawn parameters.
    pub axes: Vec<RandomAxis>,
    /// The whole block.
    pub span: Span,
}

/// One randomly drawn parameter: `STAGE.PARAM` and its distribution as written
/// (`loguniform(1e-4, 1e-2)`).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomAxis {
    /// `STAGE.PARAM`.
    pub key: Spanned<String>,
    /// The distribution's text.
    pub dist: Spanned<String>,
    /// The command-line flag that added it (`--random ...`), if it did not come from the file.
    pub set_by: Option<String>,
}

/// One swept parameter and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    /// `STAGE.PARAM`.
    pub key: Spanned<String>,
    /// The values, in order.
    pub values: Vec<Spanned<Value>>,
    /// The whole axis.
    pub span: Span,
    /// The command-line flag that added the axis (`--grid mask.rate=[0.3,0.6]`), if it did not
    /// come from the file.
    pub set_by: Option<String>,
}

/// Whether `s` is a valid stage, port or parameter name: a letter or `_`, then letters,
/// digits or `_`.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A claim as written: `claims: { NAME: { text, holds, seeds } }` in YAML, `claim NAME { ... }`
/// in `.tlx`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimAst {
    /// The claim's name.
    pub name: Spanned<String>,
    /// The claim in words.
    pub text: Option<Spanned<String>>,
    /// The condition, in the claims language; its span covers the value as written (with
    /// quotes, if quoted).
    pub holds: Spanned<String>,
    /// The seed rule as written (`all` when absent).
    pub seeds: Option<Spanned<String>>,
}
