//! What differs between run directories' files: the experiments' stages, plugins and
//! parameters (from `experiment.resolved.json`), and how each run was asked for and computed
//! (from `manifest.json`), so that a comparison says why its runs' numbers may differ.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::rundir::RunFiles;

/// One thing that is not the same in every run: what it is, and its value in each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `seed`, `backend`, `stage mask`, `mask.rate`, ...
    pub what: String,
    /// One value per run, in the runs' order (`-` where a run has none).
    pub values: Vec<String>,
}

/// Every difference between `runs`: the run-level facts first, then each stage's presence,
/// plugin and parameters in the order of the first run that has them.
pub fn differences(runs: &[RunFiles]) -> Vec<Difference> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    type Fact = Box<dyn Fn(&RunFiles) -> String>;
    let facts: Vec<(&str, Fact)> = vec![
        ("experiment", Box::new(|r| r.ir.name.clone())),
        ("root seed", Box::new(|r| r.ir.seed.to_string())),
        ("tag", Box::new(|r| r.manifest.tag.clone().unwrap_or_else(|| "-".into()))),
        ("overrides", Box::new(|r| joined(&r.manifest.overrides))),
        ("ticketlab", Box::new(|r| r.manifest.ticketlab_version.clone())),
        ("backend", Box::new(|r| r.manifest.backend.clone())),
        ("threads", Box::new(|r| r.manifest.threads.to_string())),
        ("plugin libraries", Box::new(|r| joined(&r.manifest.plugin_libraries))),
    ];
    for (what, value) in facts {
        rows.push((what.to_string(), runs.iter().map(value).collect()));
    }
    for name in stage_names(runs) {
        let stage = |r: &RunFiles| r.ir.stages.iter().find(|s| s.name == name).cloned();
        let stages: Vec<_> = runs.iter().map(stage).collect();
        let present = |s: &Option<_>| if s.is_some() { "yes" } else { "no" }.to_string();
        rows.push((format!("stage `{name}`"), stages.iter().map(present).collect()));
        let plugin = |s: &Option<ticketlab_api::ir::StageIr>| {
            s.as_ref().and_then(|s| s.plugin.clone()).unwrap_or_else(|| "-".into())
        };
        rows.push((format!("{name} plugin"), stages.iter().map(plugin).collect()));
        let mut keys: Vec<&String> = Vec::new();
        for key in stages.iter().flatten().flat_map(|s| s.params.keys()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys {
            let value = |s: &Option<ticketlab_api::ir::StageIr>| {
                s.as_ref().and_then(|s| s.params.get(key)).map_or_else(|| "-".into(), compact)
            };
            rows.push((format!("{name}.{key}"), stages.iter().map(value).collect()));
        }
    }
    rows.into_iter()
        .filter(|(_, values)| values.iter().any(|v| *v != values[0]))
        .map(|(what, values)| Difference { what, values })
        .collect()
}

/// Every stage name of the runs, each once, in the order of the first run that has it.
fn stage_names(runs: &[RunFiles]) -> Vec<String> {
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    let mut names = Vec::new();
    for r in runs {
        for s in &r.ir.stages {
            if !order.contains_key(&s.name) {
                order.insert(s.name.clone(), names.len());
                names.push(s.name.clone());
            }
        }
    }
    names
}

fn joined(list: &[String]) -> String {
    if list.is_empty() { "-".into() } else { list.join(" ") }
}

/// A value as one line of JSON (strings without quotes).
fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
