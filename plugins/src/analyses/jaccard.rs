//! Jaccard distance between masks at successive checkpoints (PAPER-SPEC section 6.1).
//!
//! For each input run and each pair of successive checkpoints `(t, t')`, the global magnitude
//! mask at `rate` is computed from both checkpoints and, per layer,
//! `JD = 1 - |m ∧ m'| / |m ∨ m'|` is reported together with the change of test accuracy over
//! the same interval (from the run's evaluations at those steps).
//!
//! JSON: `{"rate": r, "runs": {ARM: {"intervals": [[t, t'], ..], "layers": {LAYER: [jd, ..]},
//! "delta_test_acc": [.., null where not evaluated]}}}`.

use std::collections::BTreeMap;

use serde_json::json;
use ticketlab_core::artifact::{AnalysisArtifact, RunArtifact};
use ticketlab_core::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_core::pruning::select_global;
use ticketlab_core::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_core::{Result, register_plugin};

const PARAMS: &[ParamSpec] = &[ParamSpec::new("rate", ParamType::Float, "pruning rate of the magnitude masks compared").default("0.6").range_exclusive(0.0, 1.0)];

/// `1 - |a ∧ b| / |a ∨ b|` (0 when both are empty).
pub fn jaccard_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut both, mut either) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x != 0.0, *y != 0.0);
        both += usize::from(x && y);
        either += usize::from(x || y);
    }
    if either == 0 { 0.0 } else { 1.0 - both as f64 / either as f64 }
}

/// The global magnitude mask of `weights` over `prunable` at `rate`.
fn magnitude_mask(weights: &NamedTensors, prunable: &[String], rate: f64) -> MaskSet {
    let alive: MaskSet = prunable.iter().filter_map(|n| weights.get(n).map(|t| (n.clone(), HostTensor::full(t.shape.clone(), 1.0)))).collect();
    let scores: NamedTensors = alive.keys().map(|n| (n.clone(), HostTensor::new(weights[n].shape.clone(), weights[n].data.iter().map(|v| v.abs()).collect()))).collect();
    let total: usize = alive.values().map(HostTensor::len).sum();
    select_global(&alive, &scores, ((1.0 - rate) * total as f64).round() as usize)
}

fn test_acc_at(run: &RunArtifact, step: u64) -> Option<f64> {
    run.records.iter().find(|r| r.step == step).and_then(|r| r.test_acc)
}

/// The `jaccard` analysis.
#[derive(Default)]
struct Jaccard;

impl AnalysisPlugin for Jaccard {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let rate = params.f64("rate")?;
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            let masks: Vec<(u64, MaskSet)> = run.checkpoints.iter().map(|(s, w)| (*s, magnitude_mask(w, &run.init.prunable, rate))).collect();
            let mut layers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let (mut intervals, mut delta) = (Vec::new(), Vec::new());
            for pair in masks.windows(2) {
                let ((t0, m0), (t1, m1)) = (&pair[0], &pair[1]);
                intervals.push([*t0, *t1]);
                for (name, a) in m0 {
                    layers.entry(name.clone()).or_default().push(jaccard_distance(&a.data, &m1[name].data));
                }
                delta.push(test_acc_at(run, *t1).zip(test_acc_at(run, *t0)).map(|(b, a)| b - a));
            }
            runs.insert(arm.to_string(), json!({"intervals": intervals, "layers": layers, "delta_test_acc": delta}));
        }
        Ok(AnalysisArtifact { analysis: "jaccard".into(), value: json!({"rate": rate, "runs": runs}) })
    }
}

register_plugin!(Analysis, "jaccard", "1.0.0", "Per-layer Jaccard distance of magnitude masks between successive checkpoints", PARAMS, Jaccard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_disjoint_and_partial_masks() {
        assert_eq!(jaccard_distance(&[1.0, 0.0, 1.0], &[1.0, 0.0, 1.0]), 0.0);
        assert_eq!(jaccard_distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert!((jaccard_distance(&[1.0, 1.0, 0.0], &[1.0, 0.0, 1.0]) - 2.0 / 3.0).abs() < 1e-12);
    }
}
