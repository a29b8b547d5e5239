//! Jaccard distance between masks at successive checkpoints (PAPER-SPEC section 6.1).
//!
//! For each input run, the global magnitude mask at `rate` (the paper's k = 0.6) is computed
//! from every checkpoint (ranking only the weights alive in the run's own mask, with the core's
//! exact-k and tie rules, [`ticketlab_tensor::pruning::select_global`]). For each pair of
//! successive checkpoints `(t, t')`, per layer and over all layers,
//! `JD = 1 − |m_t ∧ m_t'| / |m_t ∨ m_t'|` (0 when both are empty), together with the change of
//! test accuracy over the same interval, read from the run's last evaluation at or before each
//! step (`null` when there is none, or for regression tasks). The paper's `δt` of 2k steps is
//! the trainer's `checkpoint_every: 2000`.
//!
//! JSON value:
//! ```text
//! {"rate": r,
//!  "runs": {ARM: {"intervals": [[t, t'], ..], "layers": {LAYER: [jd, ..]}, "all": [jd, ..],
//!                 "delta_test_acc": [Δ, ..]}}}
//! ```
//!
//! The run directory draws one figure per run from it ([`figures`]).

use std::collections::BTreeMap;

use serde_json::json;
use ticketlab_api::artifact::{AnalysisArtifact, RunArtifact};
use ticketlab_api::figure::{FigureContext, FigureSpec};
use ticketlab_api::plugin::{AnalysisInputs, AnalysisPlugin, ParamSpec, ParamType, Params};
use ticketlab_api::tensor::{HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result, register_plugin};
use ticketlab_tensor::pruning::select_global;

mod figures;

const PARAMS: &[ParamSpec] = &[ParamSpec::new(
    "rate",
    ParamType::Float,
    "pruning rate (fraction removed) of the global magnitude masks compared",
)
.default("0.6")
.range_exclusive(0.0, 1.0)];

/// `1 − |a ∧ b| / |a ∨ b|` of two 0/1 vectors (0 when both are empty).
pub fn jaccard_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut both, mut either) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x != 0.0, *y != 0.0);
        both += usize::from(x && y);
        either += usize::from(x || y);
    }
    if either == 0 { 0.0 } else { 1.0 - both as f64 / either as f64 }
}

/// The global magnitude mask of `weights` at `rate` over the prunable layers of a run: the
/// alive weights of `run_mask` (all weights of the prunable layers when dense) are ranked by
/// `|w|` and exactly `round((1 − rate) · total)` are kept.
pub fn magnitude_mask(
    weights: &NamedTensors,
    prunable: &[String],
    run_mask: Option<&MaskSet>,
    rate: f64,
) -> Result<MaskSet> {
    let mut alive = MaskSet::new();
    for name in prunable {
        let w = weights
            .get(name)
            .ok_or_else(|| Error::param(name, "is prunable but missing from a checkpoint"))?;
        let m = run_mask
            .and_then(|m| m.get(name))
            .cloned()
            .unwrap_or_else(|| HostTensor::full(w.shape.clone(), 1.0));
        alive.insert(name.clone(), m);
    }
    let scores: NamedTensors = alive
        .keys()
        .map(|n| {
            (
                n.clone(),
                HostTensor::new(
                    weights[n].shape.clone(),
                    weights[n].data.iter().map(|v| v.abs()).collect(),
                ),
            )
        })
        .collect();
    let total: usize = alive.values().map(HostTensor::len).sum();
    Ok(select_global(&alive, &scores, ((1.0 - rate) * total as f64).round() as usize))
}

/// Test accuracy of the last evaluation at or before `step`.
fn test_acc_at(run: &RunArtifact, step: u64) -> Option<f64> {
    run.records.iter().rev().find(|r| r.step <= step).and_then(|r| r.test_acc)
}

/// Per-layer and overall Jaccard distances of masks at successive checkpoints of one run.
fn run_series(run: &RunArtifact, rate: f64) -> Result<serde_json::Value> {
    let mut masks = Vec::new();
    for (step, w) in &run.checkpoints {
        masks.push((*step, magnitude_mask(w, &run.init.prunable, run.init.mask.as_ref(), rate)?));
    }
    let mut layers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut intervals, mut all, mut delta) = (Vec::new(), Vec::new(), Vec::new());
    for pair in masks.windows(2) {
        let ((t0, m0), (t1, m1)) = (&pair[0], &pair[1]);
        intervals.push([*t0, *t1]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (name, x) in m0 {
            layers.entry(name.clone()).or_default().push(jaccard_distance(&x.data, &m1[name].data));
            a.extend_from_slice(&x.data);
            b.extend_from_slice(&m1[name].data);
        }
        all.push(jaccard_distance(&a, &b));
        delta.push(
            test_acc_at(run, *t1).zip(test_acc_at(run, *t0)).map(|(after, before)| after - before),
        );
    }
    Ok(json!({"intervals": intervals, "layers": layers, "all": all, "delta_test_acc": delta}))
}

/// The `jaccard` analysis.
#[derive(Default)]
struct Jaccard;

impl AnalysisPlugin for Jaccard {
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let rate = params.f64("rate")?;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::param(
                "rate",
                format!("{rate} is out of range: the pruning rate must be in [0, 1)"),
            ));
        }
        if inputs.runs.is_empty() {
            return Err(Error::param("runs", "jaccard needs at least one run with checkpoints"));
        }
        let mut runs = serde_json::Map::new();
        for (arm, run) in &inputs.runs {
            runs.insert(arm.to_string(), run_series(run, rate)?);
        }
        Ok(AnalysisArtifact {
            analysis: "jaccard".into(),
            value: json!({"rate": rate, "runs": runs}),
        })
    }

    fn figures(&self, value: &serde_json::Value, ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        figures::of(value, ctx)
    }
}

register_plugin!(
    Analysis,
    "jaccard",
    "1.0.0",
    "Per-layer Jaccard distance of magnitude masks between successive checkpoints",
    PARAMS,
    Jaccard
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_disjoint_and_partial_masks() {
        assert_eq!(jaccard_distance(&[1.0, 0.0, 1.0], &[1.0, 0.0, 1.0]), 0.0);
        assert_eq!(jaccard_distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
        assert!((jaccard_distance(&[1.0, 1.0, 0.0], &[1.0, 0.0, 1.0]) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(jaccard_distance(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
    }

    #[test]
    fn magnitude_masks_rank_only_alive_weights() {
        let w: NamedTensors = [
            ("a".to_string(), HostTensor::new(vec![4], vec![0.1, -5.0, 0.3, 0.2])),
            ("b".to_string(), HostTensor::new(vec![2], vec![9.0, -0.4])),
            ("bias".to_string(), HostTensor::new(vec![1], vec![100.0])),
        ]
        .into();
        let prunable = vec!["a".to_string(), "b".to_string()];
        // 6 prunable weights at rate 0.5: the 3 largest |w| (9, 5, 0.4).
        let m = magnitude_mask(&w, &prunable, None, 0.5).unwrap();
        assert_eq!(m["a"].data, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(m["b"].data, vec![1.0, 1.0]);
        assert!(!m.contains_key("bias"));
        // With `a[1]` pruned in the run, 0.3 takes its place.
        let run_mask: MaskSet =
            [("a".to_string(), HostTensor::new(vec![4], vec![1.0, 0.0, 1.0, 1.0]))].into();
        let m = magnitude_mask(&w, &prunable, Some(&run_mask), 0.5).unwrap();
        assert_eq!(m["a"].data, vec![0.0, 0.0, 1.0, 0.0]);
    }
}
