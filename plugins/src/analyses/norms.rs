//! Weight norms over training, per layer and in total (the paper's figure 6 tracks ‖θ‖₁ and
//! ‖θ‖₂ of the base model, the ticket and the norm-controlled dense models).
//!
//! The norms come from the run's evaluations (every evaluated step, checkpoints included),
//! where the trainer measures the masked weights of every parameter.
//!
//! JSON value:
//! ```text
//! {"runs": {ARM: {"steps": [t, ..], "l1": [..], "l2": [..],
//!                 "layers": {LAYER: {"l1": [..], "l2": [..]}}}}}
//! ```

use std::collections::BTreeMap;

use serde_json::json;
use ticketlab_api::artifact::AnalysisArtifact;
use ticketlab_api::plugin::{AnalysisInputs, AnalysisPlugin, Params};
use ticketlab_api::{Error, Result, register_plugin};

/// The `weight_norms` analysis.
#[derive(Default)]
struct WeightNorms;

impl AnalysisPlugin for WeightNorms {
    fn analyze(&self, _: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        if inputs.runs.is_empty() {
            return Err(Error::param("runs", "weight_norms needs at least one run"));
        }
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            let mut layers: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for r in &run.records {
                for (name, n) in &r.layers {
                    let e = layers.entry(name).or_default();
                    e.0.push(n.l1);
                    e.1.push(n.l2);
                }
            }
            let layers: serde_json::Map<String, serde_json::Value> = layers
                .into_iter()
                .map(|(k, (l1, l2))| (k.to_string(), json!({"l1": l1, "l2": l2})))
                .collect();
            runs.insert(
                arm.to_string(),
                json!({
                    "steps": run.records.iter().map(|r| r.step).collect::<Vec<_>>(),
                    "l1": run.records.iter().map(|r| r.norms.l1).collect::<Vec<_>>(),
                    "l2": run.records.iter().map(|r| r.norms.l2).collect::<Vec<_>>(),
                    "layers": layers,
                }),
            );
        }
        Ok(AnalysisArtifact { analysis: "weight_norms".into(), value: json!({"runs": runs}) })
    }
}

register_plugin!(
    Analysis,
    "weight_norms",
    "1.0.0",
    "Global and per-layer L1/L2 weight norms over training",
    &[],
    WeightNorms
);
