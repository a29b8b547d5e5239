//! Checking the sweep (its grid and zip axes, `STAGE.uses` axes and size) and the iterative
//! pruning levels that depend on it.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use ticketlab_api::ir::{LEVELS, StageKind};
use ticketlab_api::plugin::registry::suggestion;

use super::stages::spec_help;
use super::{Axis, CheckedStage, Checker, Levels, Sweep, USES, param_place};
use crate::ast::{Experiment, Span, StageAst, SweepAst, SweepAxis};
use crate::diag::Diag;

/// The plugins a `STAGE.uses` axis of `ast` lists for `stage`, as written.
fn swept_plugins<'a>(ast: &'a Experiment, stage: &str) -> impl Iterator<Item = &'a str> {
    let key = format!("{stage}.{USES}");
    ast.sweep
        .iter()
        .flat_map(|sw| sw.grid.iter().chain(&sw.zip))
        .filter(move |a| a.key.node == key)
        .flat_map(|a| a.values.iter().filter_map(|v| v.node.as_str()))
}

/// ` (from `--grid ...`)` for an axis added on the command line.
pub(crate) fn flag_note(axis: &SweepAxis) -> String {
    axis.set_by.as_ref().map(|s| format!(" (from `{s}`)")).unwrap_or_default()
}

/// Labels `span` unless the axis came from the command line and has no place in the file.
fn axis_label(d: Diag, axis: &SweepAxis, span: Span, label: impl Into<String>) -> Diag {
    if axis.set_by.is_some() && span.is_empty() { d } else { d.label(span, label) }
}

impl Checker<'_> {
    /// The iterative pruning chains: every prune stage with `levels` above 1 must be read by
    /// exactly one rewind stage, itself read by exactly one train stage, and must not be swept
    /// by its level.
    pub(super) fn levels(
        &mut self,
        stages: &[CheckedStage],
        sweep: &Sweep,
        ast: &Experiment,
    ) -> Vec<Levels> {
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

    pub(super) fn sweep(&mut self, sw: &SweepAst, ast: &Experiment) -> Sweep {
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
        let kind = StageKind::parse(s.kind_name())?;
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
            let Some(kind) = StageKind::parse(s.kind_name()) else { continue };
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
