//! The checker: resolves an [`Experiment`] against the plugin registry.
//!
//! Every stage's kind, plugin, parameters and input ports are checked, defaults are filled, and
//! the stage graph is checked for dangling references, type mismatches and cycles. All problems
//! are collected; the result is a [`Checked`] experiment that [`crate::lower`] expands.
//!
//! The tree may have [`Gaps`](crate::ast::Gaps): parts a front end could not read and has
//! already reported. They are checked as far as possible, and nothing that only follows from a
//! gap is reported (no "not a stage" for a reference to a stage whose `kind` was missing).
//!
//! The checks are split by what they look at: `stages` checks one stage (its plugin and
//! parameters), `graph` its inputs and the cycles of the stage graph, `sweep` the sweep axes and
//! iterative pruning levels, and [`memory`] locates in the file the stages of the expanded
//! experiment that the memory budget refuses. This file holds the checked types, the entry point
//! and the `Checker` itself.

mod graph;
pub mod memory;
mod stages;
mod sweep;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::ParamSpec;
use ticketlab_api::plugin::registry::Registry;

use crate::ast::{Experiment, Gaps, Span, StageAst, is_ident};
use crate::diag::Diag;

pub(crate) use stages::{param_error, param_place};
pub(crate) use sweep::flag_note;

/// A checked stage: every parameter filled, every input resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedStage {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: StageKind,
    /// Plugin (absent for rewind).
    pub plugin: Option<String>,
    /// Parameters with defaults filled.
    pub params: BTreeMap<String, Value>,
    /// Port to producing stages.
    pub inputs: BTreeMap<String, Vec<String>>,
}

/// One checked sweep axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// `STAGE.PARAM`.
    pub key: String,
    /// The stage.
    pub stage: String,
    /// The parameter.
    pub param: String,
    /// The values.
    pub values: Vec<Value>,
    /// For a `STAGE.uses` axis (which plugin the stage uses): each plugin's parameters, the
    /// stage's own with that plugin's defaults filled.
    pub plugin_params: BTreeMap<String, BTreeMap<String, Value>>,
}

/// The sweep key that chooses a stage's plugin: `STAGE.uses`.
pub const USES: &str = "uses";

/// A checked sweep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sweep {
    /// Product axes.
    pub grid: Vec<Axis>,
    /// Paired axes (equal lengths).
    pub zip: Vec<Axis>,
    /// Seed repeats (at least 1).
    pub seeds: u64,
}

/// A checked experiment, before sweep expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Root seed.
    pub seed: u64,
    /// Plugin libraries.
    pub plugins: Vec<String>,
    /// Stages in file order.
    pub stages: Vec<CheckedStage>,
    /// The sweep (one point and one seed when absent).
    pub sweep: Sweep,
    /// Iterative pruning chains (prune stages with `levels` above 1).
    pub levels: Vec<Levels>,
}

/// A prune stage with `levels: N > 1`: N levels of prune, rewind and retrain.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    /// The prune stage.
    pub prune: String,
    /// The train stage whose run the next level prunes (it reads the rewind of this mask).
    pub train: String,
    /// Number of levels.
    pub levels: u64,
}

impl Levels {
    /// The sweep key of the level: `STAGE.level`.
    pub fn key(&self) -> String {
        format!("{}.level", self.prune)
    }

    /// The rate of level `level` (1-based) over all prunable weights when each level removes
    /// `rate` of the remaining ones: `1 - (1 - rate)^level`, rounded to 12 decimals so that
    /// level 1 is exactly `rate`.
    pub fn rate_at(rate: f64, level: u64) -> f64 {
        let kept = (1.0 - rate).powi(level as i32);
        ((1.0 - kept) * 1e12).round() / 1e12
    }
}

/// Checks `ast` against `registry`; on failure, every problem found.
///
/// Stages that `extends` another are written out in full first ([`crate::extends`]), then the
/// inputs that follow from the others are filled in ([`crate::implied`]).
pub fn check(ast: &Experiment, registry: &Registry) -> Result<Checked, Vec<Diag>> {
    let (ast, mut diags) = crate::extends::resolve(ast);
    let ast = &crate::implied::with_implied_inputs(&ast);
    let mut by_name = HashMap::new();
    for s in &ast.stages {
        by_name.entry(s.name.node.as_str()).or_insert(s);
    }
    let mut c =
        Checker { registry, diags: Vec::new(), kinds: HashMap::new(), gaps: &ast.gaps, by_name };
    let out = c.experiment(ast);
    diags.append(&mut c.diags);
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

/// Checks an experiment, collecting every problem; the methods live in this module's files.
struct Checker<'r> {
    registry: &'r Registry,
    diags: Vec<Diag>,
    /// Kinds of the stages whose kind is known, by name.
    kinds: HashMap<String, StageKind>,
    /// What the front end could not read.
    gaps: &'r Gaps,
    /// The stages checked (written out in full), by name (the first of a name).
    by_name: HashMap<&'r str, &'r StageAst>,
}

impl<'r> Checker<'r> {
    fn error(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// The stage `s` extends, if any.
    fn parent(&self, s: &StageAst) -> Option<&'r StageAst> {
        self.by_name.get(s.extends.as_ref()?.node.as_str()).copied()
    }

    /// Whether the stage `s` extends checks what `s` takes from it as `s` would: the same
    /// plugin (the kind is the same), so that a problem with an inherited parameter is
    /// reported there, once.
    fn parent_checks_alike(&self, s: &StageAst) -> bool {
        self.parent(s).is_some_and(|p| {
            p.kind.as_ref().map(|k| &k.node) == s.kind.as_ref().map(|k| &k.node)
                && p.uses.as_ref().map(|u| &u.node) == s.uses.as_ref().map(|u| &u.node)
        })
    }

    /// Whether `name` is a stage that the front end could not read.
    fn unread(&self, name: &str) -> bool {
        self.gaps.unread_stages.contains(name)
    }

    /// Core plus plugin parameter specs of a stage, if its plugin is known.
    fn specs(&self, kind: StageKind, plugin: Option<&str>) -> Option<Vec<ParamSpec>> {
        let mut specs: Vec<ParamSpec> = kind.core_params().to_vec();
        if let Some(pk) = kind.plugin_kind() {
            let entry = self.registry.get(pk, plugin?)?;
            specs.extend(entry.params.iter().copied());
        }
        Some(specs)
    }

    fn experiment(&mut self, ast: &Experiment) -> Checked {
        if !self.gaps.name && !is_ident(&ast.name.node) {
            self.error(
                Diag::new(format!("experiment name `{}` is not a valid name", ast.name.node))
                    .label(ast.name.span, "invalid name")
                    .help("use letters, digits and `_`, starting with a letter, e.g. `grokking_ticket`"),
            );
        }
        for p in &ast.plugins {
            if p.node.trim().is_empty() {
                self.error(
                    Diag::new("empty plugin path in `plugins`")
                        .label(p.span, "empty")
                        .help("remove the entry or give a library path"),
                );
            }
        }
        if ast.stages.is_empty() && !self.gaps.stages && self.gaps.unread_stages.is_empty() {
            self.error(
                Diag::new("the experiment has no stages")
                    .label(ast.name.span, "this experiment")
                    .help("add at least a dataset stage; see experiments/quickstart.yaml"),
            );
        }
        // Names and kinds first, so references can be checked in any order.
        let mut first: HashMap<&str, Span> = HashMap::new();
        for s in &ast.stages {
            let name = s.name.node.as_str();
            if !is_ident(name) {
                self.error(
                    Diag::new(format!("stage name `{name}` is not a valid name"))
                        .label(s.name.span, "invalid name")
                        .help("use letters, digits and `_`, starting with a letter or `_` (`.`, `[`, `@` are reserved for sweeps)"),
                );
            }
            if let Some(prev) = first.get(name) {
                self.error(
                    Diag::new(format!("stage `{name}` is defined twice"))
                        .label(s.name.span, "defined again here")
                        .label(*prev, "first defined here")
                        .help("stage names must be unique; rename one of them"),
                );
                continue;
            }
            first.insert(name, s.name.span);
            if let Some(k) = StageKind::parse(s.kind_name()) {
                self.kinds.insert(name.to_string(), k);
            }
        }
        let names: Vec<&str> = {
            let mut v: Vec<&str> = first.keys().copied().collect();
            v.sort_unstable();
            v
        };
        let mut stages = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &ast.stages {
            if !seen.insert(s.name.node.as_str()) {
                continue;
            }
            if let Some(cs) = self.stage(s, &names) {
                stages.push(cs);
            }
        }
        self.cycles(ast);
        let sweep = match &ast.sweep {
            Some(sw) => self.sweep(sw, ast),
            None => Sweep { seeds: 1, ..Sweep::default() },
        };
        let levels = self.levels(&stages, &sweep, ast);
        Checked {
            name: ast.name.node.clone(),
            description: ast.description.as_ref().map(|d| d.node.clone()).unwrap_or_default(),
            seed: ast.seed.as_ref().map_or(0, |s| s.node),
            plugins: ast.plugins.iter().map(|p| p.node.clone()).collect(),
            stages,
            sweep,
            levels,
        }
    }
}
