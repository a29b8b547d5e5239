//! Evaluation records and the grokking metrics computed from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// L1 and L2 norm of one parameter (after masking).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Norms {
    /// Sum of absolute values.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub l1: f64,
    /// Euclidean norm.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub l2: f64,
}

/// One evaluation of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Optimizer steps taken before this evaluation (0 = at initialisation).
    pub step: u64,
    /// Mean loss over the whole training split.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub train_loss: f64,
    /// Accuracy over the training split (regression tasks: NaN is never written; see `Option`).
    pub train_acc: Option<f64>,
    /// Mean loss over the test split.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub test_loss: f64,
    /// Accuracy over the test split.
    pub test_acc: Option<f64>,
    /// Global norms of all parameters.
    pub norms: Norms,
    /// Per-parameter norms.
    pub layers: BTreeMap<String, Norms>,
}

/// Time to memorise, time to generalise and their ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GrokMetrics {
    /// First evaluated step with train accuracy >= threshold.
    pub t_mem: Option<u64>,
    /// First evaluated step with test accuracy >= threshold.
    pub t_gen: Option<u64>,
    /// `t_gen / t_mem` (with `t_mem` taken as at least 1 step).
    pub tau_grok: Option<f64>,
}

/// Computes [`GrokMetrics`] from evaluation records (sorted by step) at `threshold` (e.g. 0.95).
pub fn grok_metrics(records: &[EvalRecord], threshold: f64) -> GrokMetrics {
    let first = |acc: fn(&EvalRecord) -> Option<f64>| {
        records.iter().find(|r| acc(r).is_some_and(|a| a >= threshold)).map(|r| r.step)
    };
    let t_mem = first(|r| r.train_acc);
    let t_gen = first(|r| r.test_acc);
    let tau_grok = match (t_mem, t_gen) {
        (Some(m), Some(g)) => Some(g as f64 / m.max(1) as f64),
        _ => None,
    };
    GrokMetrics { t_mem, t_gen, tau_grok }
}

/// How many times sooner an arm generalises than its baseline: `baseline t_gen / arm t_gen`
/// (above 1: sooner), a t_gen of step 0 counting as step 1; `None` when either never reached
/// the threshold. The one definition of `speedup_t_gen` in `summary.json` and the `compare`
/// report.
pub fn speedup_t_gen(baseline_t_gen: Option<u64>, arm_t_gen: Option<u64>) -> Option<f64> {
    match (baseline_t_gen, arm_t_gen) {
        (Some(b), Some(a)) => Some(b.max(1) as f64 / a.max(1) as f64),
        _ => None,
    }
}

/// The headline numbers of one trained arm (one row of `summary.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Steps trained.
    pub steps: u64,
    /// Accuracy threshold used for t_mem / t_gen.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub threshold: f64,
    /// First step with train accuracy >= threshold.
    pub t_mem: Option<u64>,
    /// First step with test accuracy >= threshold.
    pub t_gen: Option<u64>,
    /// t_gen / t_mem.
    pub tau_grok: Option<f64>,
    /// Final train accuracy.
    pub final_train_acc: Option<f64>,
    /// Final test accuracy.
    pub final_test_acc: Option<f64>,
    /// Final train loss.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub final_train_loss: f64,
    /// Final test loss.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub final_test_loss: f64,
    /// Fraction of prunable weights kept (1.0 for dense).
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub density: f64,
    /// Final global L1 norm.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub l1: f64,
    /// Final global L2 norm.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub l2: f64,
    /// Why a stop rule ended the training at `steps` (`None`: it ran every step it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl RunSummary {
    /// Summarises `records` (sorted by step, non-empty) of a run with the given density.
    pub fn from_records(records: &[EvalRecord], threshold: f64, density: f64) -> Option<Self> {
        let last = records.last()?;
        let g = grok_metrics(records, threshold);
        Some(Self {
            steps: last.step,
            threshold,
            t_mem: g.t_mem,
            t_gen: g.t_gen,
            tau_grok: g.tau_grok,
            final_train_acc: last.train_acc,
            final_test_acc: last.test_acc,
            final_train_loss: last.train_loss,
            final_test_loss: last.test_loss,
            density,
            l1: last.norms.l1,
            l2: last.norms.l2,
            stopped: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: u64, train: f64, test: f64) -> EvalRecord {
        EvalRecord {
            step,
            train_loss: 0.0,
            train_acc: Some(train),
            test_loss: 0.0,
            test_acc: Some(test),
            norms: Norms { l1: 0.0, l2: 0.0 },
            layers: BTreeMap::new(),
        }
    }

    #[test]
    fn grok_metrics_on_a_synthetic_curve() {
        let curve: Vec<_> = (0..=100)
            .map(|i| rec(i * 100, (i as f64 / 5.0).min(1.0), (i as f64 / 80.0).min(1.0)))
            .collect();
        let g = grok_metrics(&curve, 0.95);
        assert_eq!(g.t_mem, Some(500)); // 5/5 = 1.0 at i = 5; 4/5 = 0.8 < 0.95
        assert_eq!(g.t_gen, Some(7600)); // 76/80 = 0.95
        assert_eq!(g.tau_grok, Some(15.2));
    }

    #[test]
    fn speedups_count_step_0_as_step_1() {
        assert_eq!(speedup_t_gen(Some(400), Some(100)), Some(4.0));
        assert_eq!(speedup_t_gen(Some(0), Some(0)), Some(1.0));
        assert_eq!(speedup_t_gen(Some(300), Some(0)), Some(300.0));
        assert_eq!(speedup_t_gen(None, Some(100)), None);
        assert_eq!(speedup_t_gen(Some(100), None), None);
    }

    #[test]
    fn never_generalising_has_no_t_gen() {
        let curve = vec![rec(0, 0.0, 0.0), rec(10, 1.0, 0.3)];
        let g = grok_metrics(&curve, 0.95);
        assert_eq!((g.t_mem, g.t_gen, g.tau_grok), (Some(10), None, None));
    }
}
