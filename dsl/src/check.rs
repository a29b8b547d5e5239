//! The checker: resolves an [`Experiment`] against the plugin registry.
//!
//! Every stage's kind, plugin, parameters and input ports are checked, defaults are filled, and
//! the stage graph is checked for dangling references, type mismatches and cycles. All problems
//! are collected; the result is a [`Checked`] experiment that [`crate::lower`] expands.
//!
//! The tree may have [`Gaps`](crate::ast::Gaps): parts a front end could not read and has
//! already reported. They are checked as far as possible, and nothing that only follows from a
//! gap is reported (no "not a stage" for a reference to a stage whose `kind` was missing).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;
use ticketlab_api::Error;
use ticketlab_api::ir::{ArtifactType, Port, StageKind};
use ticketlab_api::plugin::registry::{Registry, closest, suggestion};
use ticketlab_api::plugin::{ParamSpec, Params};

use crate::ast::{
    Experiment, Gaps, InputAst, ParamAst, Span, StageAst, SweepAst, SweepAxis, is_ident,
};
use crate::diag::Diag;

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

use ticketlab_api::ir::LEVELS;

/// The sweep key that chooses a stage's plugin: `STAGE.uses`.
pub const USES: &str = "uses";

/// The plugins a `STAGE.uses` axis of `ast` lists for `stage`, as written.
fn swept_plugins<'a>(ast: &'a Experiment, stage: &str) -> impl Iterator<Item = &'a str> {
    let key = format!("{stage}.{USES}");
    ast.sweep
        .iter()
        .flat_map(|sw| sw.grid.iter().chain(&sw.zip))
        .filter(move |a| a.key.node == key)
        .flat_map(|a| a.values.iter().filter_map(|v| v.node.as_str()))
}

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
pub fn check(ast: &Experiment, registry: &Registry) -> Result<Checked, Vec<Diag>> {
    let mut c = Checker { registry, diags: Vec::new(), kinds: HashMap::new(), gaps: &ast.gaps };
    let out = c.experiment(ast);
    if c.diags.is_empty() { Ok(out) } else { Err(c.diags) }
}

fn type_label(t: ArtifactType) -> &'static str {
    match t {
        ArtifactType::Dataset => "a dataset",
        ArtifactType::Model => "a model",
        ArtifactType::Mask => "a mask",
        ArtifactType::Run => "a training run",
        ArtifactType::Analysis => "an analysis",
    }
}

fn accepts_label(port: &Port) -> String {
    port.accepts.iter().map(|t| type_label(*t)).collect::<Vec<_>>().join(" or ")
}

fn spec_help(spec: &ParamSpec) -> String {
    let mut ty = spec.ty.describe();
    if spec.min.is_some() || spec.max.is_some() {
        ty.push_str(&format!(", {}", spec.describe_range()));
    }
    if let Some(other) = spec.at_most {
        ty.push_str(&format!(", at most `{other}`"));
    }
    format!("`{}` ({ty}): {}", spec.name, spec.doc)
}

/// Where parameter `key` of stage `s` is written: its value's span and the note of a `--set`
/// that gave it; the stage's name when the file leaves it to its default (or `key` is `None`).
pub(crate) fn param_place(s: &StageAst, key: Option<&str>) -> (Span, String) {
    let given = key.and_then(|k| s.with.iter().find(|p| p.key.node == k));
    (given.map_or(s.name.span, |p| p.value.span), given.map(set_by_note).unwrap_or_default())
}

/// The parameter an error is about, if it names one, and its message.
pub(crate) fn param_error(e: &Error) -> (Option<&str>, String) {
    match e {
        Error::Param { key, message } => (Some(key.as_str()), message.clone()),
        other => (None, other.to_string()),
    }
}

fn set_by_note(p: &ParamAst) -> String {
    p.set_by.as_ref().map(|s| format!(" (from `--set {s}`)")).unwrap_or_default()
}

/// ` (from `--grid ...`)` for an axis added on the command line.
pub(crate) fn flag_note(axis: &SweepAxis) -> String {
    axis.set_by.as_ref().map(|s| format!(" (from `{s}`)")).unwrap_or_default()
}

/// Labels `span` unless the axis came from the command line and has no place in the file.
fn axis_label(d: Diag, axis: &SweepAxis, span: Span, label: impl Into<String>) -> Diag {
    if axis.set_by.is_some() && span.is_empty() { d } else { d.label(span, label) }
}

struct Checker<'r> {
    registry: &'r Registry,
    diags: Vec<Diag>,
    /// Kinds of the stages whose kind is known, by name.
    kinds: HashMap<String, StageKind>,
    /// What the front end could not read.
    gaps: &'r Gaps,
}

impl Checker<'_> {
    fn error(&mut self, d: Diag) {
        self.diags.push(d);
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
            if let Some(k) = StageKind::parse(&s.kind.node) {
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

    /// The iterative pruning chains: every prune stage with `levels` above 1 must be read by
    /// exactly one rewind stage, itself read by exactly one train stage, and must not be swept
    /// by its level.
    fn levels(&mut self, stages: &[CheckedStage], sweep: &Sweep, ast: &Experiment) -> Vec<Levels> {
        let mut out = Vec::new();
        for p in stages.iter().filter(|s| s.kind == StageKind::Prune) {
            let n = p.params.get(LEVELS).and_then(Value::as_u64).unwrap_or(1);
            let swept = sweep
                .grid
                .iter()
                .chain(&sweep.zip)
                .find(|a| a.stage == p.name && (a.param == LEVELS || a.param == "level"));
            let (span, note) = ast
                .stage(&p.name)
                .map_or((Span::default(), String::new()), |s| param_place(s, Some(LEVELS)));
            if let Some(axis) = swept {
                self.error(
                    Diag::new(format!("sweep key `{}` cannot be swept: levels run one after another, each pruning the previous level's run", axis.key))
                        .label(span, "levels set here")
                        .help(format!("set `levels` once; every level up to it is an arm of the report (`{}.level` in summary.csv)", p.name)),
                );
                continue;
            }
            if n <= 1 {
                continue;
            }
            let reads = |s: &CheckedStage, port: &str, name: &str| {
                s.inputs.get(port).is_some_and(|v| v.iter().any(|x| x == name))
            };
            let rewinds: Vec<&CheckedStage> = stages
                .iter()
                .filter(|s| s.kind == StageKind::Rewind && reads(s, "mask", &p.name))
                .collect();
            let trains: Vec<&CheckedStage> = match rewinds[..] {
                [r] => stages
                    .iter()
                    .filter(|s| s.kind == StageKind::Train && reads(s, "model", &r.name))
                    .collect(),
                _ => Vec::new(),
            };
            let [train] = trains[..] else {
                self.error(
                    Diag::new(format!(
                        "`{}.levels = {n}`{note} needs one rewind stage reading this mask and one train stage reading that rewind (found {} rewind and {} train)",
                        p.name,
                        rewinds.len(),
                        trains.len()
                    ))
                    .label(span, "levels set here")
                    .help("add `rewind` (inputs: { from: RUN, mask: THIS }) and `train` (inputs: { model: THAT_REWIND }) stages, as in experiments/quickstart.yaml"),
                );
                continue;
            };
            if !p.inputs.contains_key("from") {
                self.error(
                    Diag::new(format!("`{}.levels = {n}`{note} needs a `from` input: each level prunes the previous level's run", p.name))
                        .label(span, "levels set here")
                        .help("give the prune stage `from: RUN` (the dense run for level 1)"),
                );
                continue;
            }
            out.push(Levels { prune: p.name.clone(), train: train.name.clone(), levels: n });
        }
        out
    }

    fn stage(&mut self, s: &StageAst, names: &[&str]) -> Option<CheckedStage> {
        let name = s.name.node.as_str();
        let kinds: Vec<&str> = StageKind::ALL.iter().map(|k| k.as_str()).collect();
        let Some(kind) = StageKind::parse(&s.kind.node) else {
            self.error(
                Diag::new(format!("unknown kind `{}` in stage `{name}`", s.kind.node))
                    .label(s.kind.span, "unknown kind")
                    .help(suggestion(&s.kind.node, &kinds, "stage kinds")),
            );
            return None;
        };
        let plugin = self.plugin(s, kind);
        let params = self.params(s, kind, plugin.as_deref());
        let inputs = self.inputs(s, kind, names);
        Some(CheckedStage { name: name.to_string(), kind, plugin, params: params?, inputs })
    }

    /// The stage's plugin name if it is valid for the kind (None for rewind).
    fn plugin(&mut self, s: &StageAst, kind: StageKind) -> Option<String> {
        let name = s.name.node.as_str();
        let Some(pk) = kind.plugin_kind() else {
            if let Some(uses) = &s.uses {
                self.error(
                    Diag::new(format!("rewind stage `{name}` takes no `uses`"))
                        .label(uses.span, "rewind is built into the core")
                        .help(format!(
                            "remove `uses: {}`; choose the behaviour with `mode:` (rewind, reinit, norm_l1, norm_l2)",
                            uses.node
                        )),
                );
            }
            return None;
        };
        let known = self.registry.names(pk);
        let Some(uses) = &s.uses else {
            if self.gaps.uses.contains(name) {
                return None;
            }
            self.error(
                Diag::new(format!(
                    "stage `{name}` ({}) does not say which {pk} it uses",
                    kind.as_str()
                ))
                .label(s.name.span, format!("needs `uses: <{pk}>`"))
                .help(format!(
                    "add `uses:`; known {pk} plugins: {}",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )),
            );
            return None;
        };
        if self.registry.get(pk, &uses.node).is_none() {
            self.error(
                Diag::new(format!("unknown {pk} plugin `{}` in stage `{name}`", uses.node))
                    .label(uses.span, format!("no {pk} called `{}`", uses.node))
                    .help(format!(
                        "{}; for a plugin from a library, load the library with `--plugin PATH` or a `plugins:` list in the file",
                        suggestion(&uses.node, &known, &format!("known {pk} plugins"))
                    )),
            );
            return None;
        }
        Some(uses.node.clone())
    }

    fn params(
        &mut self,
        s: &StageAst,
        kind: StageKind,
        plugin: Option<&str>,
    ) -> Option<BTreeMap<String, Value>> {
        let name = s.name.node.as_str();
        // Without a known plugin the valid keys are unknown: report nothing more here.
        let specs = self.specs(kind, plugin)?;
        let what = match plugin {
            Some(p) => format!("{}/{p}", kind.as_str()),
            None => kind.as_str().to_string(),
        };
        let valid: Vec<&str> = specs.iter().map(|p| p.name).collect();
        let mut out = BTreeMap::new();
        let mut ok = true;
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in &s.with {
            let key = p.key.node.as_str();
            if let Some(prev) = seen.get(key) {
                self.error(
                    Diag::new(format!("parameter `{name}.{key}` is given twice"))
                        .label(p.key.span, "given again here")
                        .label(*prev, "first given here")
                        .help("remove one of them"),
                );
                ok = false;
                continue;
            }
            seen.insert(key, p.key.span);
            let Some(spec) = specs.iter().find(|sp| sp.name == key) else {
                self.error(
                    Diag::new(format!(
                        "unknown parameter `{key}` in stage `{name}` ({what}){}",
                        set_by_note(p)
                    ))
                    .label(p.key.span, "unknown parameter")
                    .help(suggestion(
                        key,
                        &valid,
                        &format!("parameters of {what}"),
                    )),
                );
                ok = false;
                continue;
            };
            if let Err(e) = spec.check(&p.value.node) {
                self.error(
                    Diag::new(format!("invalid value for `{name}.{key}`{}: {e}", set_by_note(p)))
                        .label(p.value.span, "invalid value")
                        .help(spec_help(spec)),
                );
                ok = false;
                continue;
            }
            out.insert(key.to_string(), p.value.node.clone());
        }
        for spec in &specs {
            if out.contains_key(spec.name) || seen.contains_key(spec.name) {
                continue;
            }
            match spec.default_value() {
                Some(d) => {
                    out.insert(spec.name.to_string(), d);
                }
                None if self.gaps.params.contains(name) => ok = false,
                None => {
                    self.error(
                        Diag::new(format!(
                            "stage `{name}` ({what}) needs parameter `{}`",
                            spec.name
                        ))
                        .label(s.name.span, format!("`{}` missing", spec.name))
                        .help(format!(
                            "add `{}` under `with`; {}",
                            spec.name,
                            spec_help(spec)
                        )),
                    );
                    ok = false;
                }
            }
        }
        // Bounds between parameters, with every value known (defaults filled).
        let values: serde_json::Map<String, Value> =
            out.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for spec in &specs {
            if let Err(e) = spec.check_bound(&values) {
                let (span, note) = param_place(s, Some(spec.name));
                self.error(
                    Diag::new(format!("invalid value for `{name}.{}`{note}: {e}", spec.name))
                        .label(span, "beyond its bound")
                        .help(spec_help(spec)),
                );
                ok = false;
            }
        }
        // The plugin's own check of how its values combine.
        let entry = kind.plugin_kind().zip(plugin).and_then(|(pk, p)| self.registry.get(pk, p));
        if let (true, Some(entry)) = (ok, entry)
            && let Err(e) = entry.instance.check(&Params(out.clone()))
        {
            let (key, message) = param_error(&e);
            let (span, note) = param_place(s, key);
            let subject =
                key.map_or_else(|| format!("stage `{name}`"), |k| format!("`{name}.{k}`"));
            self.error(
                Diag::new(format!("invalid value for {subject}{note}: {message}"))
                    .label(span, "refused by the plugin")
                    .help(format!("see `ticketlab plugins describe {what}`")),
            );
            ok = false;
        }
        ok.then_some(out)
    }

    fn inputs(
        &mut self,
        s: &StageAst,
        kind: StageKind,
        names: &[&str],
    ) -> BTreeMap<String, Vec<String>> {
        let name = s.name.node.as_str();
        let ports = kind.ports();
        let port_names: Vec<&str> = ports.iter().map(|p| p.name).collect();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        // Ports that a misspelt port was probably meant as: not reported again as missing.
        let mut meant: HashSet<&str> = HashSet::new();
        for input in &s.inputs {
            let pname = input.port.node.as_str();
            if let Some(prev) = seen.get(pname) {
                self.error(
                    Diag::new(format!("input `{name}.{pname}` is connected twice"))
                        .label(input.port.span, "connected again here")
                        .label(*prev, "first connected here")
                        .help(format!(
                            "connect `{pname}` once (a list if the port takes several stages)"
                        )),
                );
                continue;
            }
            seen.insert(pname, input.port.span);
            let Some(port) = ports.iter().find(|p| p.name == pname) else {
                meant.extend(closest(pname, &port_names));
                let help = if ports.is_empty() {
                    format!("{} stages take no inputs; remove `{pname}`", kind.as_str())
                } else {
                    suggestion(pname, &port_names, &format!("ports of {} stages", kind.as_str()))
                };
                self.error(
                    Diag::new(format!(
                        "unknown input port `{pname}` in stage `{name}` ({})",
                        kind.as_str()
                    ))
                    .label(input.port.span, "unknown port")
                    .help(help),
                );
                continue;
            };
            self.connection(s, port, input, names);
            out.insert(pname.to_string(), input.refs.iter().map(|r| r.node.clone()).collect());
        }
        if self.gaps.inputs.contains(name) {
            // An input was left out: what is missing may be just that.
            return out;
        }
        if matches!(kind, StageKind::Analyze | StageKind::Report)
            && meant.is_empty()
            && out.values().all(Vec::is_empty)
        {
            let list: Vec<String> =
                ports.iter().map(|p| format!("`{}` ({})", p.name, accepts_label(p))).collect();
            self.error(
                Diag::new(format!("{} stage `{name}` has no inputs", kind.as_str()))
                    .label(s.name.span, "no inputs connected")
                    .help(format!(
                        "connect at least one of the ports of {} stages: {}; e.g. `inputs: {{ runs: [STAGE, ...] }}`",
                        kind.as_str(),
                        list.join(", ")
                    )),
            );
        }
        for port in ports
            .iter()
            .filter(|p| p.required && !seen.contains_key(p.name) && !meant.contains(p.name))
        {
            self.error(
                Diag::new(format!(
                    "stage `{name}` ({}) needs input `{}`",
                    kind.as_str(),
                    port.name
                ))
                .label(s.name.span, format!("`{}` not connected", port.name))
                .help(format!(
                    "add `inputs: {{ {}: STAGE }}` with a stage producing {}",
                    port.name,
                    accepts_label(port)
                )),
            );
        }
        out
    }

    fn connection(&mut self, s: &StageAst, port: &Port, input: &InputAst, names: &[&str]) {
        let name = s.name.node.as_str();
        if !port.many && (input.list || input.refs.len() != 1) {
            self.error(
                Diag::new(format!("input `{name}.{}` takes one stage, not a list", port.name))
                    .label(input.span, "a list here")
                    .help(format!("connect a single stage: `{}: STAGE`", port.name)),
            );
        }
        if input.refs.is_empty() && port.required {
            self.error(
                Diag::new(format!("input `{name}.{}` is connected to no stage", port.name))
                    .label(input.span, "empty")
                    .help(format!("connect a stage producing {}", accepts_label(port))),
            );
        }
        let mut listed: HashMap<&str, Span> = HashMap::new();
        for r in &input.refs {
            let target = r.node.as_str();
            if let Some(prev) = listed.get(target) {
                self.error(
                    Diag::new(format!(
                        "stage `{target}` is listed twice in `{name}.{}`",
                        port.name
                    ))
                    .label(r.span, "listed again here")
                    .label(*prev, "first listed here")
                    .help("list each stage once"),
                );
                continue;
            }
            listed.insert(target, r.span);
            if self.unread(target) {
                continue;
            }
            if !names.contains(&target) {
                self.error(
                    Diag::new(format!(
                        "`{name}.{}` refers to `{target}`, which is not a stage",
                        port.name
                    ))
                    .label(r.span, "no such stage")
                    .help(suggestion(target, names, "stages")),
                );
                continue;
            }
            if let Some(k) = self.kinds.get(target)
                && !port.accepts.contains(&k.output())
            {
                self.error(
                    Diag::new(format!(
                        "input `{name}.{}` takes {}, but `{target}` ({}) produces {}",
                        port.name,
                        accepts_label(port),
                        k.as_str(),
                        type_label(k.output())
                    ))
                    .label(r.span, format!("produces {}", type_label(k.output())))
                    .help(format!(
                        "connect `{}` to a stage producing {}",
                        port.name,
                        accepts_label(port)
                    )),
                );
            }
        }
    }

    /// Reports each cycle of the stage graph once.
    fn cycles(&mut self, ast: &Experiment) {
        let index: HashMap<&str, usize> =
            ast.stages.iter().enumerate().map(|(i, s)| (s.name.node.as_str(), i)).collect();
        // Edges: consumer -> producers, with the span of the reference.
        let edges: Vec<Vec<(usize, Span)>> = ast
            .stages
            .iter()
            .map(|s| {
                s.inputs
                    .iter()
                    .flat_map(|i| i.refs.iter())
                    .filter_map(|r| index.get(r.node.as_str()).map(|&j| (j, r.span)))
                    .collect()
            })
            .collect();
        let n = ast.stages.len();
        let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            // Iterative DFS; the stack holds (node, next edge index).
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (v, ref mut next)) = stack.last_mut() {
                if *next < edges[v].len() {
                    let (w, span) = edges[v][*next];
                    *next += 1;
                    match state[w] {
                        0 => {
                            state[w] = 1;
                            stack.push((w, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                            let cycle: Vec<usize> = stack[from..].iter().map(|&(x, _)| x).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if reported.insert(key) {
                                self.report_cycle(ast, &cycle, span);
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[v] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn report_cycle(&mut self, ast: &Experiment, cycle: &[usize], closing: Span) {
        let mut path: Vec<&str> = cycle.iter().map(|&i| ast.stages[i].name.node.as_str()).collect();
        path.push(path[0]);
        let mut d =
            Diag::new(format!("stages depend on each other in a cycle: {}", path.join(" ← ")))
                .label(closing, "this reference closes the cycle");
        for &i in cycle {
            d = d.label(ast.stages[i].name.span, "");
        }
        self.error(d.help(
            "a stage can only use stages that do not depend on it; remove one of these references",
        ));
    }

    fn sweep(&mut self, sw: &SweepAst, ast: &Experiment) -> Sweep {
        let mut seen: HashMap<String, &SweepAxis> = HashMap::new();
        let grid: Vec<Axis> =
            self.axes(&sw.grid, ast, &mut seen, true).into_iter().map(|(a, _)| a).collect();
        // Each checked zip axis with the axis it was written as (invalid axes are left out).
        let zip = self.axes(&sw.zip, ast, &mut seen, false);
        if let Some((first, first_ast)) = zip.first() {
            let n = first.values.len();
            for (axis, ast_axis) in zip.iter().skip(1) {
                let m = axis.values.len();
                if m != n {
                    let d = Diag::new(format!(
                        "zip axes must have the same number of values: `{}`{} has {n}, `{}`{} has {m}",
                        first.key,
                        flag_note(first_ast),
                        axis.key,
                        flag_note(ast_axis),
                    ));
                    let d = axis_label(d, ast_axis, ast_axis.span, format!("{m} values"));
                    let d = axis_label(d, first_ast, first_ast.span, format!("{n} values"));
                    self.error(d.help("zip pairs values index by index; give every zipped parameter as many values, or use `grid` for all combinations"));
                }
            }
        }
        let zip: Vec<Axis> = zip.into_iter().map(|(a, _)| a).collect();
        self.swept_params_fit_every_plugin(&grid.iter().chain(&zip).collect::<Vec<_>>(), ast);
        if sw.grid.is_empty() && sw.zip.is_empty() && sw.seeds.is_none() && !self.gaps.sweep {
            self.error(
                Diag::new("the sweep is empty")
                    .label(sw.span, "nothing to sweep")
                    .help("add `grid`, `zip` or `seeds`, or remove the sweep"),
            );
        }
        let sweep = Sweep { grid, zip, seeds: sw.seeds.as_ref().map_or(1, |s| s.node) };
        self.sweep_size(&sweep, sw);
        sweep
    }

    /// Refuses a sweep of more than [`crate::MAX_SWEEP_POINTS`] points before anything is
    /// expanded.
    fn sweep_size(&mut self, sweep: &Sweep, sw: &SweepAst) {
        let rows = sweep.zip.first().map_or(1, |a| a.values.len() as u64);
        let points = sweep
            .grid
            .iter()
            .try_fold(rows, |n, a| n.checked_mul(a.values.len() as u64))
            .and_then(|n| n.checked_mul(sweep.seeds));
        if points.is_some_and(|n| n <= crate::MAX_SWEEP_POINTS) {
            return;
        }
        let count = points.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
        let span = match &sw.seeds {
            Some(s) if s.node > crate::MAX_SWEEP_POINTS => s.span,
            _ => sw.span,
        };
        self.error(
            Diag::new(format!(
                "the sweep has {count} points (grid combinations x zip rows x seeds), more than the {} one experiment may have",
                crate::MAX_SWEEP_POINTS
            ))
            .label(span, "this sweep")
            .help("sweep fewer values or seeds, or split the study into several experiment files"),
        );
    }

    /// Checks axes, returning each valid one with the axis as written; `distinct` refuses
    /// repeated values (grid axes: a repeat would be the same point).
    fn axes<'a>(
        &mut self,
        axes: &'a [SweepAxis],
        ast: &Experiment,
        seen: &mut HashMap<String, &'a SweepAxis>,
        distinct: bool,
    ) -> Vec<(Axis, &'a SweepAxis)> {
        let mut out = Vec::new();
        for axis in axes {
            let key = axis.key.node.as_str();
            if let Some(prev) = seen.get(key) {
                let by = |a: &SweepAxis| {
                    a.set_by.as_ref().map_or("the file".to_string(), |f| format!("`{f}`"))
                };
                let message = if axis.set_by.is_some() || prev.set_by.is_some() {
                    format!("`{key}` is swept twice: by {} and by {}", by(prev), by(axis))
                } else {
                    format!("`{key}` is swept twice")
                };
                let d = axis_label(Diag::new(message), axis, axis.key.span, "swept again here");
                let d = axis_label(d, prev, prev.key.span, "first swept here");
                self.error(d.help("sweep each parameter once, in `grid` or in `zip`"));
                continue;
            }
            seen.insert(key.to_string(), axis);
            if let Some(a) = self.axis(axis, ast, distinct) {
                out.push((a, axis));
            }
        }
        out
    }

    fn axis(&mut self, axis: &SweepAxis, ast: &Experiment, refuse_repeats: bool) -> Option<Axis> {
        let key = axis.key.node.as_str();
        let note = flag_note(axis);
        let Some((stage, param)) = key.split_once('.') else {
            let d = Diag::new(format!("sweep key `{key}`{note} must be `STAGE.PARAM`"));
            self.error(
                axis_label(d, axis, axis.key.span, "expected STAGE.PARAM")
                    .help("name the stage and its parameter, e.g. `mask.rate`"),
            );
            return None;
        };
        let Some(s) = ast.stage(stage) else {
            if self.unread(stage) {
                return None;
            }
            let names: Vec<&str> = ast.stages.iter().map(|s| s.name.node.as_str()).collect();
            let d = Diag::new(format!(
                "sweep key `{key}`{note} names stage `{stage}`, which does not exist"
            ));
            self.error(
                axis_label(d, axis, axis.key.span, "no such stage")
                    .help(suggestion(stage, &names, "stages")),
            );
            return None;
        };
        let kind = StageKind::parse(&s.kind.node)?;
        if param == USES {
            return self.uses_axis(axis, s, kind, refuse_repeats);
        }
        let plugin = s.uses.as_ref().map(|u| u.node.as_str());
        let mut specs = self.specs(kind, plugin)?;
        // With its plugin swept, a stage takes the parameters of any of those plugins; which
        // combinations fail is reported once all axes are known.
        for other in swept_plugins(ast, stage) {
            specs.extend(self.specs(kind, Some(other)).unwrap_or_default());
        }
        let Some(spec) = specs.iter().find(|p| p.name == param) else {
            let valid: Vec<&str> = specs.iter().map(|p| p.name).collect();
            let d = Diag::new(format!(
                "sweep key `{key}`{note}: stage `{stage}` has no parameter `{param}`"
            ));
            self.error(axis_label(d, axis, axis.key.span, "unknown parameter").help(suggestion(
                param,
                &valid,
                &format!("parameters of `{stage}`"),
            )));
            return None;
        };
        if self.refuse_empty(axis) {
            return None;
        }
        let mut ok = true;
        let mut distinct: Vec<&Value> = Vec::new();
        for v in &axis.values {
            if let Err(e) = spec.check(&v.node) {
                let d = Diag::new(format!("invalid sweep value for `{key}`{note}: {e}"));
                self.error(axis_label(d, axis, v.span, "invalid value").help(spec_help(spec)));
                ok = false;
            } else if refuse_repeats && distinct.contains(&&v.node) {
                let d = Diag::new(format!("sweep axis `{key}`{note} lists {} twice", v.node));
                self.error(
                    axis_label(d, axis, v.span, "repeated value")
                        .help("each value of a grid axis makes a sweep point; list it once"),
                );
                ok = false;
            } else {
                distinct.push(&v.node);
            }
        }
        ok.then(|| Axis {
            key: key.to_string(),
            stage: stage.to_string(),
            param: param.to_string(),
            values: axis.values.iter().map(|v| v.node.clone()).collect(),
            plugin_params: BTreeMap::new(),
        })
    }

    /// Reports an axis without values; true when it had none.
    fn refuse_empty(&mut self, axis: &SweepAxis) -> bool {
        if !axis.values.is_empty() {
            return false;
        }
        let d =
            Diag::new(format!("sweep axis `{}`{} has no values", axis.key.node, flag_note(axis)));
        self.error(
            axis_label(d, axis, axis.span, "empty list")
                .help("give at least one value, or remove the axis"),
        );
        true
    }

    /// A `STAGE.uses` axis: every value names a plugin of the stage's kind, and the stage's
    /// parameters are valid for each (problems are reported at the parameter and the value).
    fn uses_axis(
        &mut self,
        axis: &SweepAxis,
        s: &StageAst,
        kind: StageKind,
        refuse_repeats: bool,
    ) -> Option<Axis> {
        let (key, note, stage) = (axis.key.node.as_str(), flag_note(axis), s.name.node.as_str());
        let Some(pk) = kind.plugin_kind() else {
            let d = Diag::new(format!(
                "sweep key `{key}`{note}: rewind stage `{stage}` uses no plugin to sweep"
            ));
            self.error(axis_label(d, axis, axis.key.span, "rewind is built into the core").help(
                "sweep its `mode` instead (rewind, reinit, norm_l1, norm_l2), or the `uses` of a stage with a plugin",
            ));
            return None;
        };
        if self.refuse_empty(axis) {
            return None;
        }
        let known = self.registry.names(pk);
        let mut plugin_params = BTreeMap::new();
        let mut ok = true;
        for v in &axis.values {
            let Some(name) = v.node.as_str().filter(|n| self.registry.get(pk, n).is_some()) else {
                let written = v.node.as_str().map_or_else(|| v.node.to_string(), str::to_string);
                let d = Diag::new(format!(
                    "invalid sweep value for `{key}`{note}: no {pk} plugin called `{written}`"
                ));
                self.error(axis_label(d, axis, v.span, "unknown plugin").help(suggestion(
                    &written,
                    &known,
                    &format!("known {pk} plugins"),
                )));
                ok = false;
                continue;
            };
            if plugin_params.contains_key(name) {
                if refuse_repeats {
                    let d = Diag::new(format!("sweep axis `{key}`{note} lists `{name}` twice"));
                    self.error(
                        axis_label(d, axis, v.span, "repeated value")
                            .help("each value of a grid axis makes a sweep point; list it once"),
                    );
                    ok = false;
                }
                continue;
            }
            let before = self.diags.len();
            match self.params(s, kind, Some(name)) {
                Some(params) => {
                    plugin_params.insert(name.to_string(), params);
                }
                None => ok = false,
            }
            for d in &mut self.diags[before..] {
                d.message.push_str(&format!(" (with `uses: {name}`, swept by `{key}`{note})"));
                if axis.set_by.is_none() || !v.span.is_empty() {
                    d.labels.push((v.span, format!("`{stage}` uses `{name}` here")));
                }
            }
        }
        ok.then(|| Axis {
            key: key.to_string(),
            stage: stage.to_string(),
            param: USES.to_string(),
            values: axis.values.iter().map(|v| v.node.clone()).collect(),
            plugin_params,
        })
    }

    /// Every other swept parameter of a stage whose plugin is swept is a parameter of each of
    /// its plugins, with values valid for each.
    fn swept_params_fit_every_plugin(&mut self, axes: &[&Axis], ast: &Experiment) {
        for uses in axes.iter().filter(|a| a.param == USES) {
            let Some(s) = ast.stage(&uses.stage) else { continue };
            let Some(kind) = StageKind::parse(&s.kind.node) else { continue };
            for other in axes.iter().filter(|a| a.stage == uses.stage && a.param != USES) {
                for plugin in uses.plugin_params.keys() {
                    let Some(specs) = self.specs(kind, Some(plugin)) else { continue };
                    let problem = match specs.iter().find(|p| p.name == other.param) {
                        None => Some(format!("`{plugin}` has no parameter `{}`", other.param)),
                        Some(spec) => other.values.iter().find_map(|v| {
                            spec.check(v).err().map(|e| format!("`{plugin}` refuses {v}: {e}"))
                        }),
                    };
                    if let Some(problem) = problem {
                        let span = s.uses.as_ref().map_or(s.name.span, |u| u.span);
                        self.error(
                            Diag::new(format!(
                                "sweep axes `{}` and `{}` do not combine: {problem}",
                                uses.key, other.key
                            ))
                            .label(span, format!("`{}` is swept", uses.key))
                            .help(format!(
                                "sweep `{}` only over plugins that take it, or split the study into two experiments",
                                other.key
                            )),
                        );
                    }
                }
            }
        }
    }
}
