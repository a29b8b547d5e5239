//! What a claim may name: the experiment's stages, their metrics and the sweep axes.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ir::{ExperimentIr, StageKind, written_name};

/// The fields of a trained arm's summary (`summary.json` / `summary.csv`) a claim may name
/// after a train stage.
pub const SUMMARY_METRICS: [&str; 12] = [
    "t_mem",
    "t_gen",
    "tau_grok",
    "final_train_acc",
    "final_test_acc",
    "final_train_loss",
    "final_test_loss",
    "l1",
    "l2",
    "speedup_t_gen",
    "density",
    "steps",
];

/// What the checker knows about the experiment, built by the front end from the checked file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    /// Every stage by its written name (not the expanded `stage[...]@seedN` copies).
    pub stages: BTreeMap<String, StageSchema>,
    /// Every sweep axis (`STAGE.PARAM`, as in the file's `sweep:`) with its values in sweep
    /// order; aggregations iterate in this order.
    pub axes: BTreeMap<String, Vec<Value>>,
}

/// One stage as the checker sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageSchema {
    /// The stage kind as written (`train`, `prune`, `analyze`, `report`, ...), for messages.
    pub kind: String,
    /// Whether the stage trains, so that its summary fields ([`SUMMARY_METRICS`]) can be named.
    pub trains: bool,
    /// The scalar outputs an analyze or report stage gives (names a claim may use after it).
    pub outputs: Vec<String>,
    /// The sweep axes the stage's copies vary over: its own swept parameters and those of
    /// every stage upstream of it. A reference to the stage must fix or iterate each of them.
    pub swept_on: Vec<String>,
}

impl StageSchema {
    /// The metric names the stage answers: the summary fields if it trains, then its outputs.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = if self.trains { SUMMARY_METRICS.to_vec() } else { Vec::new() };
        out.extend(self.outputs.iter().map(String::as_str));
        out
    }
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema of an expanded experiment: every stage by its written name (train stages
    /// give the summary's metrics), swept on the axes its copies' points hold, and every axis
    /// with the values its copies take, numbers in ascending order and other values in the
    /// order the stages first take them.
    pub fn of(ir: &ExperimentIr) -> Self {
        let mut schema = Schema::new();
        for stage in &ir.stages {
            let name = written_name(&stage.name);
            let swept_on: Vec<&str> = stage.sweep.keys().map(String::as_str).collect();
            for (axis, value) in &stage.sweep {
                let values = schema.axes.entry(axis.clone()).or_default();
                if !values.contains(value) {
                    values.push(value.clone());
                }
            }
            if schema.stages.contains_key(name) {
                continue;
            }
            schema = match stage.kind {
                StageKind::Train => schema.train(name, &swept_on),
                kind => schema.other(name, kind.as_str(), &swept_on),
            };
        }
        for values in schema.axes.values_mut() {
            if values.iter().all(Value::is_number) {
                values.sort_by(|a, b| {
                    a.as_f64().unwrap_or(0.0).total_cmp(&b.as_f64().unwrap_or(0.0))
                });
            }
        }
        schema
    }

    /// Adds a train stage, varying over the axes `swept_on`.
    pub fn train(self, name: &str, swept_on: &[&str]) -> Self {
        self.stage(
            name,
            StageSchema { kind: "train".into(), trains: true, ..Default::default() },
            swept_on,
        )
    }

    /// Adds an analyze or report stage (`kind`) with its scalar `outputs`.
    pub fn analysis(self, name: &str, kind: &str, outputs: &[&str], swept_on: &[&str]) -> Self {
        let outputs = outputs.iter().map(|s| s.to_string()).collect();
        self.stage(name, StageSchema { kind: kind.into(), outputs, ..Default::default() }, swept_on)
    }

    /// Adds a stage that gives no metrics (dataset, model, prune, rewind, ...), so that the
    /// checker can say why a claim cannot name it.
    pub fn other(self, name: &str, kind: &str, swept_on: &[&str]) -> Self {
        self.stage(name, StageSchema { kind: kind.into(), ..Default::default() }, swept_on)
    }

    /// Adds the sweep axis `key` (`STAGE.PARAM`) with its values.
    pub fn axis(mut self, key: &str, values: impl IntoIterator<Item = Value>) -> Self {
        self.axes.insert(key.to_string(), values.into_iter().collect());
        self
    }

    fn stage(mut self, name: &str, mut s: StageSchema, swept_on: &[&str]) -> Self {
        s.swept_on = swept_on.iter().map(|a| a.to_string()).collect();
        self.stages.insert(name.to_string(), s);
        self
    }

    /// The names of the stages a claim can name a metric of.
    pub fn measurable_stages(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|(_, s)| !s.metrics().is_empty())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}
