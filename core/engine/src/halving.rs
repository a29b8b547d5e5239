//! Successive halving over the sweep points of a train stage (its `select` parameter:
//! `{ rungs: [1000, 3000, 9000], metric: test_acc, keep: 0.33 }`).
//!
//! The plan is executed once per rung, then once more: at rung `r` every copy of the stage still
//! in the race trains to step `r` and pauses there, its state saved in the store as a stop
//! would save it ([`Rungs::pause`]); the sweep points are ranked by `metric` at their last
//! evaluation at or before `r`, averaged over the point's seeds, and the points outside the best
//! `keep` fraction (at least one point stays) are cut there ([`Rungs::cut`]). The last execution
//! trains the remaining copies to the end and gives each cut copy a run that ends at its saved
//! state and says why (`stopped`), as a stop rule's would; the run directory, figures and claims
//! treat it so. A cut copy's run is never stored, nor is an analysis or report that reads it,
//! so the store holds only whole trainings; stages that would train or prune from a cut copy do
//! not run. Its saved state stays in the store: a later run with a larger `keep` resumes it.
//! A copy the store already holds finished is ranked but never cut: it costs nothing.
//!
//! Every step an arm takes is the step it takes without selection, so the arms that reach the
//! end have exactly the numbers of an unselected run.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::events::RunEvents;
use crate::executor::{ExecOptions, Execution, Rungs, execute};
use crate::plan::Plan;
use crate::store::Store;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::ir::{StageKind, written_name};
use ticketlab_api::metrics::EvalRecord;
use ticketlab_api::plugin::registry::Registry;

/// A `select` parameter with rungs.
#[derive(Debug, Clone, PartialEq)]
struct Selection {
    rungs: Vec<u64>,
    metric: String,
    keep: f64,
}

impl Selection {
    /// The `select` of a stage's parameters; `None` without rungs.
    fn of(params: &BTreeMap<String, Value>) -> Option<Self> {
        let select = params.get("select")?;
        let mut rungs: Vec<u64> =
            select.get("rungs")?.as_array()?.iter().filter_map(Value::as_u64).collect();
        rungs.sort_unstable();
        rungs.dedup();
        (!rungs.is_empty()).then(|| Self {
            rungs,
            metric: select.get("metric").and_then(Value::as_str).unwrap_or("test_acc").to_string(),
            keep: select.get("keep").and_then(Value::as_f64).unwrap_or(0.5),
        })
    }

    /// The metric of `record`, oriented so that larger is better.
    fn score(&self, record: &EvalRecord) -> Option<f64> {
        let value = match self.metric.as_str() {
            "train_acc" => record.train_acc?,
            "test_loss" => -record.test_loss,
            "train_loss" => -record.train_loss,
            "l2" => -record.norms.l2,
            _ => record.test_acc?,
        };
        value.is_finite().then_some(value)
    }

    /// The metric as written, from an oriented score.
    fn shown(&self, score: f64) -> f64 {
        if self.metric.ends_with("_acc") { score } else { -score }
    }
}

/// The copies of one selected stage: each sweep point's copies (one per seed), in plan order.
struct Group {
    stage: String,
    selection: Selection,
    points: Vec<(String, Vec<String>)>,
}

/// The selected stages of `plan`, each with its points; a stage with one point has nothing to
/// select and is left out.
fn groups(plan: &Plan) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for ps in plan.stages.iter().filter(|ps| ps.stage.kind == StageKind::Train) {
        let Some(selection) = Selection::of(&ps.stage.params) else { continue };
        let name = &ps.stage.name;
        let stage = written_name(name).to_string();
        let point =
            name.split_once('[').and_then(|(_, rest)| rest.split_once(']')).map_or("", |(p, _)| p);
        let group = match out.iter_mut().find(|g| g.stage == stage) {
            Some(g) => g,
            None => {
                out.push(Group { stage, selection, points: Vec::new() });
                out.last_mut().expect("just pushed")
            }
        };
        match group.points.iter_mut().find(|(p, _)| p == point) {
            Some((_, copies)) => copies.push(name.clone()),
            None => group.points.push((point.to_string(), vec![name.clone()])),
        }
    }
    out.retain(|g| g.points.len() > 1);
    out
}

/// One line per stage that selects by successive halving: its points, rungs, metric and
/// fraction kept (what `plan` shows under its table).
pub fn describe(plan: &Plan) -> Vec<String> {
    groups(plan)
        .iter()
        .map(|g| {
            let copies: usize = g.points.iter().map(|(_, c)| c.len()).sum();
            let rungs: Vec<String> = g.selection.rungs.iter().map(u64::to_string).collect();
            format!(
                "successive halving: `{}` over {} points ({copies} trainings), ranked by {} at steps {}, keeping {}% at each",
                g.stage,
                g.points.len(),
                g.selection.metric,
                rungs.join(", "),
                (g.selection.keep * 100.0).round()
            )
        })
        .collect()
}

/// Executes `plan` with successive halving for every train stage whose `select` has rungs, and
/// as [`execute`] does otherwise. Stops (a signal) end it at once, as they end `execute`.
pub fn execute_selecting(
    plan: &Plan,
    registry: &Registry,
    store: &Store,
    options: &ExecOptions,
    events: &mut dyn RunEvents,
) -> Execution {
    let groups = groups(plan);
    if groups.is_empty() {
        return execute(plan, registry, store, options, events);
    }
    let mut plan = separate_batches(plan, &groups);
    let mut cut: BTreeMap<String, String> = BTreeMap::new();
    let rungs: BTreeSet<u64> =
        groups.iter().flat_map(|g| g.selection.rungs.iter().copied()).collect();
    for rung in rungs {
        let racing: Vec<&Group> =
            groups.iter().filter(|g| g.selection.rungs.contains(&rung)).collect();
        let mut pause = BTreeMap::new();
        for name in racing.iter().flat_map(|g| g.points.iter().flat_map(|(_, copies)| copies)) {
            let Some(ps) = plan.stage(name) else { continue };
            let steps = ps.stage.params.get("steps").and_then(Value::as_u64).unwrap_or(u64::MAX);
            if !cut.contains_key(name) && !store.contains(&ps.key) && rung < steps {
                pause.insert(name.clone(), rung);
            }
        }
        if pause.is_empty() {
            continue;
        }
        let stages: Vec<String> = racing.iter().map(|g| format!("`{}`", g.stage)).collect();
        events.log(&format!(
            "successive halving: the copies of {} still racing train to step {rung}",
            stages.join(", ")
        ));
        refresh(&mut plan, store);
        let rungs = Rungs { pause, ..rungs_cutting(&plan, &cut) };
        let exec =
            execute(&plan, registry, store, &ExecOptions { rungs, ..options.clone() }, events);
        if exec.stopped {
            return exec;
        }
        for group in racing {
            for (name, reason) in rank(group, rung, &plan, store, &cut) {
                events.log(&format!("{name}: {reason}"));
                cut.insert(name, reason);
            }
        }
    }
    refresh(&mut plan, store);
    let rungs = rungs_cutting(&plan, &cut);
    execute(&plan, registry, store, &ExecOptions { rungs, ..options.clone() }, events)
}

/// What the store holds now, for the plan's `cached` and `resume_from` (shown when an
/// execution starts).
fn refresh(plan: &mut Plan, store: &Store) {
    for ps in &mut plan.stages {
        ps.cached = store.contains(&ps.key);
        ps.resume_from = if ps.cached { None } else { store.partial_step(&ps.key).ok().flatten() };
    }
}

/// The copies of `group` to cut at `rung`, with why: the points outside the best `keep` fraction
/// of those still in the race, by the mean of their copies' scores (a point without one ranks
/// last); copies the store holds finished are never cut.
fn rank(
    group: &Group,
    rung: u64,
    plan: &Plan,
    store: &Store,
    cut: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let selection = &group.selection;
    let racing: Vec<&(String, Vec<String>)> = group
        .points
        .iter()
        .filter(|(_, copies)| copies.iter().all(|c| !cut.contains_key(c)))
        .collect();
    let mut scored: Vec<(usize, Option<f64>, usize)> = racing
        .iter()
        .enumerate()
        .map(|(i, (_, copies))| {
            let scores: Vec<f64> = copies
                .iter()
                .filter_map(|c| records(plan, store, c))
                .filter_map(|records| {
                    records.iter().rev().find(|r| r.step <= rung).and_then(|r| selection.score(r))
                })
                .collect();
            let mean =
                (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            (i, mean, scores.len())
        })
        .collect();
    // Best first; a point without a score last; ties in plan order.
    scored.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    let kept = ((selection.keep * racing.len() as f64).ceil() as usize).clamp(1, racing.len());
    let mut out = Vec::new();
    for (place, (i, mean, seeds)) in scored.iter().enumerate().skip(kept) {
        let value = mean.map_or("no value".to_string(), |m| {
            let plural = if *seeds == 1 { "" } else { "s" };
            format!(
                "{} {} (mean of {seeds} seed{plural})",
                selection.metric,
                short(selection.shown(m))
            )
        });
        let reason = format!(
            "cut by successive halving at step {rung}: {value}, {} of {} points (kept the best {kept})",
            ordinal(place + 1),
            racing.len()
        );
        for copy in &racing[*i].1 {
            let finished = plan.stage(copy).is_some_and(|ps| store.contains(&ps.key));
            if !finished {
                out.push((copy.clone(), reason.clone()));
            }
        }
    }
    out
}

/// `x` with four decimals, in scientific notation below 0.01 (a train loss late in training).
fn short(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.01 { format!("{x:.3e}") } else { format!("{x:.4}") }
}

/// `1st`, `2nd`, `3rd`, `4th`, ..., `11th`, `12th`, `13th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The evaluations of copy `name` so far: its stored run, else its saved state.
fn records(plan: &Plan, store: &Store, name: &str) -> Option<Vec<EvalRecord>> {
    let key = &plan.stage(name)?.key;
    if store.contains(key) {
        return match store.load(key).ok()? {
            Artifact::Run(run) => Some(run.records),
            _ => None,
        };
    }
    store.load_partial(key).ok().flatten().map(|state| state.records)
}

/// The rungs of an execution that cuts `cut`: their reasons, and what reads them.
fn rungs_cutting(plan: &Plan, cut: &BTreeMap<String, String>) -> Rungs {
    let mut rungs = Rungs { cut: cut.clone(), ..Rungs::default() };
    // The origin (a cut copy) each stage reads through its inputs, in plan (topological) order.
    let mut reads_cut: BTreeMap<&str, &str> = BTreeMap::new();
    for ps in &plan.stages {
        let name = ps.stage.name.as_str();
        let origin = ps.stage.inputs.values().flatten().find_map(|input| {
            cut.get_key_value(input.as_str())
                .map(|(k, _)| k.as_str())
                .or_else(|| reads_cut.get(input.as_str()).copied())
        });
        let Some(origin) = origin else { continue };
        reads_cut.insert(name, origin);
        match ps.stage.kind {
            StageKind::Analyze | StageKind::Report => {
                rungs.unstored.insert(name.to_string());
            }
            _ => {
                rungs.not_run.insert(name.to_string(), origin.to_string());
            }
        }
    }
    rungs
}

/// `plan` with its batches split so that the copies of each selected stage batch only with
/// each other: a pause at a rung ends every arm of a batch.
fn separate_batches(plan: &Plan, groups: &[Group]) -> Plan {
    let group_of = |name: &str| groups.iter().position(|g| g.stage == written_name(name));
    let mut plan = plan.clone();
    let mut renumbered: BTreeMap<(usize, Option<usize>), usize> = BTreeMap::new();
    for ps in &mut plan.stages {
        if let Some(batch) = ps.batch {
            let next = renumbered.len() + 1;
            ps.batch = Some(*renumbered.entry((batch, group_of(&ps.stage.name))).or_insert(next));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).to_vec();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }

    #[test]
    fn losses_and_norms_rank_lower_first() {
        let record = EvalRecord {
            step: 10,
            train_loss: 0.5,
            train_acc: Some(0.9),
            test_loss: 2.0,
            test_acc: Some(0.3),
            norms: ticketlab_api::metrics::Norms { l1: 1.0, l2: 4.0 },
            layers: BTreeMap::new(),
        };
        let select = |metric: &str| Selection { rungs: vec![10], metric: metric.into(), keep: 0.5 };
        assert_eq!(select("test_acc").score(&record), Some(0.3));
        assert_eq!(select("test_loss").score(&record), Some(-2.0));
        assert_eq!(select("l2").score(&record), Some(-4.0));
        assert_eq!(select("l2").shown(-4.0), 4.0);
        let regression = EvalRecord { test_acc: None, ..record };
        assert_eq!(select("test_acc").score(&regression), None);
    }
}
