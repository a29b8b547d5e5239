//! Sweep expansion: one checked experiment becomes the stages of every sweep point and seed.
//!
//! The points are the Cartesian product of the `grid` axes (axes in key order, the last key
//! varying fastest) combined with each row of the paired `zip` axes. A stage is copied once per
//! distinct combination of the swept values it depends on: those of its own parameters and those
//! of every stage upstream of it. A stage that depends on no swept value is shared by all points.
//! Copies are named `stage[key=value,...]` (keys sorted, values as compact JSON). With
//! `seeds: N > 1` the whole experiment is repeated with root seeds `seed + 0 .. seed + N - 1` and
//! every stage name gets `@seedR`, R being the repeat's root seed. A `STAGE.uses` axis sweeps
//! which plugin a stage uses: each copy takes that plugin's parameters (its defaults filled),
//! then the point's other swept values. A prune stage with `levels: N` adds the axis
//! `STAGE.level = 1..N` to the grid: level L prunes the run of level L - 1 (its `from` becomes
//! the chain's train stage at level L - 1) at the rate `1 - (1 - rate)^L`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use ticketlab_api::ir::StageIr;
use ticketlab_api::seed;

use crate::check::{Axis, Checked, CheckedStage, Levels, Sweep, USES};
use ticketlab_api::ir::{LEVELS, StageKind};

/// A sweep point: `STAGE.PARAM` to value.
pub type Point = BTreeMap<String, Value>;

/// Every sweep point, in a deterministic order (one empty point when nothing is swept).
pub fn points(sweep: &Sweep) -> Vec<Point> {
    let mut grid: Vec<_> = sweep.grid.iter().collect();
    grid.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out: Vec<Point> = vec![Point::new()];
    for axis in grid {
        out = out
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.insert(axis.key.clone(), v.clone());
                    q
                })
            })
            .collect();
    }
    if let Some(rows) = sweep.zip.first().map(|a| a.values.len()) {
        out = out
            .into_iter()
            .flat_map(|p| {
                (0..rows).map(move |i| {
                    let mut q = p.clone();
                    for axis in &sweep.zip {
                        if let Some(v) = axis.values.get(i) {
                            q.insert(axis.key.clone(), v.clone());
                        }
                    }
                    q
                })
            })
            .collect();
    }
    out
}

/// The name of a stage's copy for the swept values `point` and the repeat `suffix`.
pub fn expanded_name(base: &str, point: &Point, suffix: &str) -> String {
    if point.is_empty() {
        return format!("{base}{suffix}");
    }
    let parts: Vec<String> = point
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{base}[{}]{suffix}", parts.join(","))
}

/// Expands a checked experiment into IR stages in topological order (ties by name).
pub fn expand(checked: &Checked) -> Vec<StageIr> {
    let by_name: HashMap<&str, &CheckedStage> =
        checked.stages.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut own: HashMap<&str, BTreeSet<String>> = HashMap::new();
    // `STAGE.uses` axes: each plugin's parameters for that stage.
    let mut plugin_params: HashMap<&str, &BTreeMap<String, BTreeMap<String, Value>>> =
        HashMap::new();
    for axis in checked.sweep.grid.iter().chain(&checked.sweep.zip) {
        own.entry(axis.stage.as_str()).or_default().insert(axis.key.clone());
        if axis.param == USES {
            plugin_params.insert(axis.stage.as_str(), &axis.plugin_params);
        }
    }
    // Iterative pruning: each chain's level is one more grid axis of its prune stage.
    let mut sweep = checked.sweep.clone();
    let levels: HashMap<&str, &Levels> =
        checked.levels.iter().map(|l| (l.prune.as_str(), l)).collect();
    for l in &checked.levels {
        own.entry(l.prune.as_str()).or_default().insert(l.key());
        sweep.grid.push(Axis {
            key: l.key(),
            stage: l.prune.clone(),
            param: "level".into(),
            values: (1..=l.levels).map(Value::from).collect(),
            plugin_params: BTreeMap::new(),
        });
    }
    let mut relevant: HashMap<String, BTreeSet<String>> = HashMap::new();
    for s in &checked.stages {
        relevant_keys(&s.name, &by_name, &own, &mut relevant);
    }
    let points = points(&sweep);
    let seeds = checked.sweep.seeds.max(1);
    let mut stages: BTreeMap<String, StageIr> = BTreeMap::new();
    for r in 0..seeds {
        let root = checked.seed.wrapping_add(r);
        let suffix = if seeds > 1 { format!("@seed{root}") } else { String::new() };
        for s in &checked.stages {
            for point in &points {
                let restricted = restrict(point, &relevant[&s.name]);
                let unrepeated = expanded_name(&s.name, &restricted, "");
                let name = format!("{unrepeated}{suffix}");
                if stages.contains_key(&name) {
                    continue;
                }
                // The plugin first (it decides the defaults), then the swept parameters.
                let plugin = restricted
                    .get(&format!("{}.{USES}", s.name))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| s.plugin.clone());
                let mut params = match (plugin_params.get(s.name.as_str()), &plugin) {
                    (Some(by_plugin), Some(p)) => by_plugin.get(p).cloned().unwrap_or_default(),
                    _ => s.params.clone(),
                };
                for (key, value) in &restricted {
                    if let Some((stage, param)) = key.split_once('.')
                        && stage == s.name
                        && param != USES
                        && levels.get(stage).is_none_or(|l| l.key() != *key)
                    {
                        params.insert(param.to_string(), value.clone());
                    }
                }
                if s.kind == StageKind::Prune {
                    params.remove(LEVELS);
                }
                // Level L prunes the run of level L - 1 at the rate that keeps (1 - rate)^L.
                let level = levels
                    .get(s.name.as_str())
                    .and_then(|l| Some((*l, restricted.get(&l.key())?.as_u64()?)));
                if let Some((_, at)) = level {
                    // `rate` as swept or written: the fraction of the remaining weights.
                    let rate = params.get("rate").and_then(Value::as_f64).unwrap_or(0.0);
                    params.insert("rate".into(), Value::from(Levels::rate_at(rate, at)));
                }
                let mut inputs: BTreeMap<String, Vec<String>> = s
                    .inputs
                    .iter()
                    .map(|(port, producers)| {
                        let names = producers
                            .iter()
                            .map(|p| {
                                let keys = relevant.get(p).cloned().unwrap_or_default();
                                expanded_name(p, &restrict(point, &keys), &suffix)
                            })
                            .collect();
                        (port.clone(), names)
                    })
                    .collect();
                if let Some((l, at)) = level.filter(|(_, at)| *at > 1) {
                    let mut previous = point.clone();
                    previous.insert(l.key(), Value::from(at - 1));
                    let keys = relevant.get(&l.train).cloned().unwrap_or_default();
                    let run = expanded_name(&l.train, &restrict(&previous, &keys), &suffix);
                    inputs.insert("from".into(), vec![run]);
                }
                let ir = StageIr {
                    // The repeat is in the root, not the name: repeat 0 is the unrepeated run.
                    seed: seed::derive(root, &unrepeated),
                    name: name.clone(),
                    kind: s.kind,
                    plugin,
                    params,
                    inputs,
                    sweep: restricted,
                };
                stages.insert(name, ir);
            }
        }
    }
    topological(stages)
}

fn restrict(point: &Point, keys: &BTreeSet<String>) -> Point {
    point.iter().filter(|(k, _)| keys.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The swept keys a stage depends on: its own and those of every upstream stage.
fn relevant_keys(
    name: &str,
    by_name: &HashMap<&str, &CheckedStage>,
    own: &HashMap<&str, BTreeSet<String>>,
    memo: &mut HashMap<String, BTreeSet<String>>,
) -> BTreeSet<String> {
    if let Some(k) = memo.get(name) {
        return k.clone();
    }
    // Mark as in progress; the checker has refused cycles, so this only guards against them.
    memo.insert(name.to_string(), BTreeSet::new());
    let mut keys = own.get(name).cloned().unwrap_or_default();
    if let Some(s) = by_name.get(name) {
        for producer in s.inputs.values().flatten() {
            keys.extend(relevant_keys(producer, by_name, own, memo));
        }
    }
    memo.insert(name.to_string(), keys.clone());
    keys
}

/// Kahn's algorithm, always taking the smallest ready name.
fn topological(mut stages: BTreeMap<String, StageIr>) -> Vec<StageIr> {
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    let mut consumers: HashMap<String, Vec<String>> = HashMap::new();
    for (name, s) in &stages {
        let producers: BTreeSet<&String> =
            s.inputs.values().flatten().filter(|p| stages.contains_key(*p)).collect();
        pending.insert(name.clone(), producers.len());
        for p in producers {
            consumers.entry(p.clone()).or_default().push(name.clone());
        }
    }
    let mut ready: BTreeSet<String> =
        pending.iter().filter(|(_, n)| **n == 0).map(|(k, _)| k.clone()).collect();
    let mut out = Vec::with_capacity(stages.len());
    while let Some(name) = ready.pop_first() {
        for c in consumers.get(&name).into_iter().flatten() {
            if let Some(n) = pending.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(c.clone());
                }
            }
        }
        if let Some(s) = stages.remove(&name) {
            out.push(s);
        }
    }
    // Unreachable for checked experiments (no cycles); keep any rest rather than drop it.
    out.extend(stages.into_values());
    out
}
