//! Turning pruner scores into masks, with the invariants enforced here once for every pruner.
//!
//! - **Pruning rate means the fraction removed.** `rate = 0.6` keeps 40% of the prunable
//!   weights (the paper's k; its code calls the *kept* fraction "sparsity").
//! - **Monotone masks.** A weight pruned before is never revived: only alive weights are ranked,
//!   and the new mask is a subset of the current one.
//! - **Exact k.** Exactly `round(density * total)` weights are kept (globally, or per layer
//!   with `scope: layerwise`), never "everything at or above a threshold".
//! - **Deterministic ties.** Equal scores are ordered by layer name, then by flat index.
//! - **Iterative pruners** reach the target over their rounds on an exponential
//!   (`d^(r/R)`) or linear schedule, re-scoring the masked network each round.
//! - **Reports.** Every mask comes with a per-layer density report; a layer at density 0
//!   (layer collapse) is a warning or, with `on_collapse: error`, an error.

use std::collections::BTreeMap;

use crate::artifact::{DensityReport, MaskArtifact};
use crate::data::Dataset;
use crate::plugin::{Params, PruneContext, PrunerPlugin, StageContext};
use crate::tensor::{Architecture, HostTensor, MaskSet, NamedTensors};
use crate::{Error, Result};

/// Everything [`make_mask`] needs besides the pruner.
pub struct MaskRequest<'a> {
    /// `kind/name@version` of the pruner, for messages and the artifact.
    pub pruner_id: &'a str,
    /// The stage's parameters: the core's (`rate`, `scope`, `schedule`, `on_collapse`) and the
    /// pruner's own.
    pub params: &'a Params,
    /// The network.
    pub arch: &'a dyn Architecture,
    /// The weights being scored.
    pub weights: &'a NamedTensors,
    /// The current mask over every prunable parameter (ones for a dense model).
    pub current: &'a MaskSet,
    /// A reference mask for controls (e.g. the mask to shuffle).
    pub reference: Option<&'a MaskSet>,
    /// The data.
    pub data: &'a Dataset,
    /// The stage's context.
    pub ctx: &'a StageContext,
    /// The step of the scored weights (`None` = initialisation).
    pub scored_at: Option<u64>,
}

/// A mask of ones over `arch`'s prunable parameters.
pub fn dense_mask(arch: &dyn Architecture) -> MaskSet {
    arch.parameters().into_iter().filter(|p| p.prunable).map(|p| (p.name, HostTensor::full(p.shape, 1.0))).collect()
}

/// Density after round `round` (0-based) of `rounds`, ending at `target`.
fn scheduled_density(target: f64, round: usize, rounds: usize, schedule: &str) -> f64 {
    let frac = (round + 1) as f64 / rounds as f64;
    if schedule == "linear" { 1.0 - (1.0 - target) * frac } else { target.powf(frac) }
}

/// Scores `req.weights` with `pruner` and returns the mask, enforcing the module's invariants.
pub fn make_mask(pruner: &dyn PrunerPlugin, req: &MaskRequest<'_>) -> Result<MaskArtifact> {
    let rate = req.params.f64("rate")?;
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::param("rate", format!("{rate} is out of range: the pruning rate (fraction removed) must be in [0, 1)")));
    }
    let layerwise = req.params.str("scope")? == "layerwise";
    let schedule = req.params.str("schedule")?;
    let rounds = pruner.rounds(req.params).max(1);
    let mut mask = req.current.clone();
    for (name, m) in &mask {
        match req.weights.get(name) {
            Some(w) if w.shape == m.shape => {}
            Some(w) => return Err(Error::shape(name, format!("mask {:?} vs weights {:?}", m.shape, w.shape))),
            None => return Err(Error::param(name, "is prunable but missing from the scored weights")),
        }
    }
    for round in 0..rounds {
        let density = scheduled_density(1.0 - rate, round, rounds, schedule);
        let ctx = PruneContext {
            arch: req.arch,
            params: req.weights,
            mask: &mask,
            reference_mask: req.reference,
            data: req.data,
            ctx: req.ctx,
            round: (round, rounds),
        };
        let scores = pruner.score(req.params, &ctx)?;
        check_scores(req.pruner_id, &mask, &scores.scores)?;
        mask = match &scores.keep_per_layer {
            Some(counts) => select_per_layer(&mask, &scores.scores, |name, _| counts.get(name).copied().unwrap_or(0)),
            None if layerwise => select_per_layer(&mask, &scores.scores, |_, total| (density * total as f64).round() as usize),
            None => {
                let total: usize = mask.values().map(HostTensor::len).sum();
                select_global(&mask, &scores.scores, (density * total as f64).round() as usize)
            }
        };
    }
    let report = DensityReport::of(&mask);
    let mut warnings = Vec::new();
    let collapsed = report.collapsed();
    if !collapsed.is_empty() {
        let message = format!("layer collapse: {} kept no weights at rate {rate}", collapsed.join(", "));
        if req.params.str("on_collapse")? == "error" {
            return Err(Error::plugin(req.pruner_id, format!("{message}; lower the rate or use `scope: layerwise`")));
        }
        warnings.push(message);
    }
    Ok(MaskArtifact { masks: mask, report, pruner: req.pruner_id.to_string(), rate, scored_at: req.scored_at, warnings })
}

/// Refuses scores of the wrong names or shapes, and non-finite scores of alive weights.
fn check_scores(pruner: &str, mask: &MaskSet, scores: &NamedTensors) -> Result<()> {
    for (name, m) in mask {
        let s = scores.get(name).ok_or_else(|| Error::plugin(pruner, format!("returned no scores for layer `{name}`")))?;
        if s.data.len() != m.data.len() {
            return Err(Error::plugin(pruner, format!("returned {} scores for layer `{name}`, which has {} weights", s.data.len(), m.data.len())));
        }
        if let Some(i) = s.data.iter().zip(&m.data).position(|(v, k)| *k != 0.0 && !v.is_finite()) {
            return Err(Error::plugin(pruner, format!("returned a non-finite score ({}) for layer `{name}` at index {i}", s.data[i])));
        }
    }
    Ok(())
}

/// Keeps the `keep` best alive weights over all layers (exact k, deterministic ties); also used
/// by analyses that need the magnitude mask of a checkpoint.
pub fn select_global(mask: &MaskSet, scores: &NamedTensors, keep: usize) -> MaskSet {
    let names: Vec<&String> = mask.keys().collect();
    let mut alive: Vec<(f32, usize, usize)> = Vec::new();
    for (li, name) in names.iter().enumerate() {
        let (m, s) = (&mask[*name], &scores[*name]);
        alive.extend(m.data.iter().enumerate().filter(|(_, k)| **k != 0.0).map(|(i, _)| (s.data[i], li, i)));
    }
    rank(&mut alive);
    let mut out: MaskSet = mask.iter().map(|(k, m)| (k.clone(), HostTensor::zeros(m.shape.clone()))).collect();
    for &(_, li, i) in alive.iter().take(keep) {
        out.get_mut(names[li]).expect("same keys").data[i] = 1.0;
    }
    out
}

/// Keeps, in each layer, the `keep(name, layer_total)` best alive weights.
fn select_per_layer(mask: &MaskSet, scores: &NamedTensors, keep: impl Fn(&str, usize) -> usize) -> MaskSet {
    let mut out = BTreeMap::new();
    for (name, m) in mask {
        let s = &scores[name];
        let mut alive: Vec<(f32, usize, usize)> = m.data.iter().enumerate().filter(|(_, k)| **k != 0.0).map(|(i, _)| (s.data[i], 0, i)).collect();
        rank(&mut alive);
        let mut layer = HostTensor::zeros(m.shape.clone());
        for &(_, _, i) in alive.iter().take(keep(name, m.len())) {
            layer.data[i] = 1.0;
        }
        out.insert(name.clone(), layer);
    }
    out
}

/// Best first: higher score, then lower layer index, then lower flat index.
fn rank(entries: &mut [(f32, usize, usize)]) {
    entries.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Scores;

    struct Fixed(Vec<f32>);

    impl PrunerPlugin for Fixed {
        fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
            let mut scores = NamedTensors::new();
            let mut offset = 0;
            for (name, m) in ctx.mask {
                scores.insert(name.clone(), HostTensor::new(m.shape.clone(), self.0[offset..offset + m.len()].to_vec()));
                offset += m.len();
            }
            Ok(Scores { scores, keep_per_layer: None })
        }
        fn rounds(&self, p: &Params) -> usize {
            p.usize("rounds").unwrap_or(1)
        }
    }

    fn params(rate: f64, scope: &str) -> Params {
        Params::new().with("rate", rate).with("scope", scope).with("schedule", "exponential").with("on_collapse", "warn").with("rounds", 1)
    }

    fn masks(a: Vec<f32>, b: Vec<f32>) -> MaskSet {
        [("a".to_string(), HostTensor::new(vec![a.len()], a)), ("b".to_string(), HostTensor::new(vec![b.len()], b))].into()
    }

    fn run(pruner: &Fixed, p: &Params, current: &MaskSet) -> Result<MaskArtifact> {
        let arch = NoArch;
        let data = crate::data::Dataset {
            description: String::new(),
            info: crate::data::DatasetInfo { input_shape: vec![1], output_dim: 1, tokens: None },
            train: crate::data::Split { x: HostTensor::zeros(vec![0, 1]), y: crate::data::Targets::Classes { labels: vec![], n_classes: 1 } },
            test: crate::data::Split { x: HostTensor::zeros(vec![0, 1]), y: crate::data::Targets::Classes { labels: vec![], n_classes: 1 } },
        };
        let ctx = StageContext { stage: "mask".into(), seed: 0, base_dir: ".".into() };
        let weights = current.clone();
        make_mask(pruner, &MaskRequest { pruner_id: "pruner/fixed@1", params: p, arch: &arch, weights: &weights, current, reference: None, data: &data, ctx: &ctx, scored_at: None })
    }

    struct NoArch;
    impl Architecture for NoArch {
        fn parameters(&self) -> Vec<crate::tensor::ParamDef> {
            vec![]
        }
        fn forward(&self, _: &mut crate::tensor::GraphBuilder, _: &BTreeMap<String, crate::tensor::Var>, x: crate::tensor::Var) -> Result<crate::tensor::Var> {
            Ok(x)
        }
    }

    #[test]
    fn global_exact_k_with_deterministic_ties() {
        let current = masks(vec![1.0; 4], vec![1.0; 4]);
        // Scores tie at 5.0 across layers: layer `a` wins the tie, then lower indices.
        let m = run(&Fixed(vec![5.0, 1.0, 5.0, 0.0, 5.0, 5.0, 2.0, 3.0]), &params(0.5, "global"), &current).unwrap();
        assert_eq!(m.masks["a"].data, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m.masks["b"].data, vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.report.kept, 4);
    }

    #[test]
    fn pruned_weights_are_never_revived_or_ranked() {
        // `a[0]` is already pruned; its huge score must not bring it back.
        let current = masks(vec![0.0, 1.0, 1.0, 1.0], vec![1.0; 4]);
        let m = run(&Fixed(vec![100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), &params(0.5, "global"), &current).unwrap();
        assert_eq!(m.masks["a"].data[0], 0.0);
        assert_eq!(m.report.kept, 4);
        for (name, mk) in &m.masks {
            for (new, old) in mk.data.iter().zip(&current[name].data) {
                assert!(*new <= *old, "mask must be monotone");
            }
        }
    }

    #[test]
    fn layerwise_keeps_the_rate_in_every_layer_and_collapse_is_reported() {
        let current = masks(vec![1.0; 4], vec![1.0; 4]);
        let m = run(&Fixed(vec![1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0]), &params(0.5, "layerwise"), &current).unwrap();
        assert_eq!(m.report.layers["a"].kept, 2);
        assert_eq!(m.report.layers["b"].kept, 2);
        let g = run(&Fixed(vec![1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0]), &params(0.5, "global"), &current).unwrap();
        assert_eq!(g.report.layers["a"].kept, 0);
        assert!(g.warnings[0].contains("layer collapse"));
        let mut strict = params(0.5, "global");
        strict.0.insert("on_collapse".into(), "error".into());
        assert!(run(&Fixed(vec![1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0, 9.0]), &strict, &current).is_err());
    }

    #[test]
    fn iterative_rounds_follow_the_exponential_schedule() {
        let current = masks(vec![1.0; 50], vec![1.0; 50]);
        let scores: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut p = params(0.9, "global");
        p.0.insert("rounds".into(), 3.into());
        let m = run(&Fixed(scores), &p, &current).unwrap();
        assert_eq!(m.report.kept, 10);
        assert!((scheduled_density(0.1, 0, 3, "exponential") - 0.1f64.powf(1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn nan_scores_and_bad_rates_are_refused() {
        let current = masks(vec![1.0; 2], vec![1.0; 2]);
        let err = run(&Fixed(vec![1.0, f32::NAN, 1.0, 1.0]), &params(0.5, "global"), &current).unwrap_err().to_string();
        assert!(err.contains("non-finite") && err.contains("pruner/fixed"), "{err}");
        let err = run(&Fixed(vec![1.0; 4]), &params(1.0, "global"), &current).unwrap_err().to_string();
        assert!(err.contains("[0, 1)"), "{err}");
    }
}
