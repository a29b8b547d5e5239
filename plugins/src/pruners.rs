//! Built-in pruners, exact to the reference implementations (ANCHORS.md section b).
//!
//! Each returns one score per prunable weight; the core ([`ticketlab_core::pruning`]) ranks
//! alive weights only, keeps exactly k, breaks ties deterministically and keeps masks monotone,
//! so none of that is repeated here. Higher score = more important = kept.

use rand::SeedableRng;
use ticketlab_core::data::{Split, Targets};
use ticketlab_core::plugin::{ParamSpec, ParamType, Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_core::tensor::{HostTensor, NamedTensors, Objective, gradients, hessian_gradient_product};
use ticketlab_core::{Error, Result, register_plugin, seed};

/// Scores shaped like the prunable layers of the current mask, from `f(name, index, weight)`.
fn per_weight(ctx: &PruneContext<'_>, mut f: impl FnMut(&str, usize, f32) -> f32) -> Result<NamedTensors> {
    let mut out = NamedTensors::new();
    for (name, m) in ctx.mask {
        let w = ctx.params.get(name).ok_or_else(|| Error::param(name, "missing from the scored weights"))?;
        out.insert(name.clone(), HostTensor::new(m.shape.clone(), w.data.iter().enumerate().map(|(i, v)| f(name, i, *v)).collect()));
    }
    Ok(out)
}

/// The weights with the current mask applied (w = m * theta).
fn masked(ctx: &PruneContext<'_>) -> NamedTensors {
    let mut w = ctx.params.clone();
    for (name, m) in ctx.mask {
        if let Some(t) = w.get_mut(name) {
            t.data.iter_mut().zip(&m.data).filter(|(_, k)| **k == 0.0).for_each(|(v, _)| *v = 0.0);
        }
    }
    w
}

/// The training examples used for scoring: all, or a seeded subset of `batch` of them.
fn scoring_split(params: &Params, ctx: &PruneContext<'_>) -> Result<Split> {
    let n = ctx.data.train.len();
    let batch = params.usize("batch")?;
    if batch == 0 || batch >= n {
        return Ok(ctx.data.train.clone());
    }
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(ctx.ctx.seed));
    idx.truncate(batch);
    Ok(ctx.data.train.select(&idx))
}

/// Cross-entropy needs class labels.
fn check_classification(split: &Split, pruner: &str) -> Result<()> {
    match split.y {
        Targets::Classes { .. } => Ok(()),
        Targets::Regression { .. } => Err(Error::plugin(format!("pruner/{pruner}"), "scores with cross-entropy and needs a classification task")),
    }
}

const BATCH: ParamSpec = ParamSpec::new("batch", ParamType::Int, "training examples used for scoring; 0 = the whole training split (as the paper's code: one batch holds all 911 pairs)").default("0").min(0.0);

// ---- magnitude -------------------------------------------------------------------------

/// |w|.
#[derive(Default)]
struct Magnitude;

impl PrunerPlugin for Magnitude {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        Ok(Scores { scores: per_weight(ctx, |_, _, w| w.abs())?, keep_per_layer: None })
    }
}

register_plugin!(Pruner, "magnitude", "1.0.0", "Magnitude |w|, global or layer-wise (the grokking-ticket mask)", &[], Magnitude);

// ---- random ----------------------------------------------------------------------------

/// Seeded N(0, 1) scores: an exact-k uniformly random subset of the alive weights.
#[derive(Default)]
struct Random;

/// Standard normal scores from the stage seed, round and layer name.
fn random_scores(ctx: &PruneContext<'_>) -> Result<NamedTensors> {
    let mut out = NamedTensors::new();
    for (name, m) in ctx.mask {
        let s = ctx.ctx.seed ^ seed::splitmix64(seed::fnv1a(name) ^ ctx.round.0 as u64);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
        let data = (0..m.len()).map(|_| standard_normal(&mut rng)).collect();
        out.insert(name.clone(), HostTensor::new(m.shape.clone(), data));
    }
    Ok(out)
}

/// One N(0, 1) draw (Box-Muller), written here so the numbers never depend on a crate version.
fn standard_normal(rng: &mut impl rand::Rng) -> f32 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

impl PrunerPlugin for Random {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        Ok(Scores { scores: random_scores(ctx)?, keep_per_layer: None })
    }
}

register_plugin!(Pruner, "random", "1.0.0", "Random exact-k pruning (seeded Gaussian scores), global or layer-wise", &[], Random);

// ---- shuffle ---------------------------------------------------------------------------

/// The shuffled-mask control: keeps each layer's kept count of a reference mask (the `mask`
/// input) but chooses the weights at random.
#[derive(Default)]
struct Shuffle;

impl PrunerPlugin for Shuffle {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let reference = ctx
            .reference_mask
            .ok_or_else(|| Error::plugin("pruner/shuffle", "needs the mask to shuffle: connect a prune stage to the `mask` input"))?;
        let keep = reference.iter().map(|(name, m)| (name.clone(), m.data.iter().filter(|v| **v != 0.0).count())).collect();
        Ok(Scores { scores: random_scores(ctx)?, keep_per_layer: Some(keep) })
    }
}

register_plugin!(Pruner, "shuffle", "1.0.0", "Control: a reference mask's per-layer densities with randomly chosen weights", &[], Shuffle);

// ---- SNIP ------------------------------------------------------------------------------

const SNIP_PARAMS: &[ParamSpec] = &[BATCH];

/// SNIP connection sensitivity |dL/dm| = |g * w| of the cross-entropy on the training data.
#[derive(Default)]
struct Snip;

impl PrunerPlugin for Snip {
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let split = scoring_split(params, ctx)?;
        check_classification(&split, "snip")?;
        let w = masked(ctx);
        let g = gradients(ctx.arch, &w, None, &split, Objective::CrossEntropy { temperature: 1.0 })?;
        let scores = per_weight(ctx, |name, i, _| (g[name].data[i] * w[name].data[i]).abs())?;
        Ok(Scores { scores: normalise(scores, |s| s), keep_per_layer: None })
    }
}

register_plugin!(Pruner, "snip", "1.0.0", "SNIP: |g * w| of the cross-entropy (connection sensitivity)", SNIP_PARAMS, Snip);

/// Divides every score by `norm(sum of scores)` (as the reference code; the ranking is unchanged).
fn normalise(mut scores: NamedTensors, norm: impl Fn(f64) -> f64) -> NamedTensors {
    let total: f64 = scores.values().flat_map(|t| t.data.iter()).map(|v| f64::from(*v)).sum();
    let d = norm(total);
    if d != 0.0 && d.is_finite() {
        for t in scores.values_mut() {
            t.data.iter_mut().for_each(|v| *v = (f64::from(*v) / d) as f32);
        }
    }
    scores
}

// ---- GraSP -----------------------------------------------------------------------------

const GRASP_PARAMS: &[ParamSpec] = &[
    BATCH,
    ParamSpec::new("temperature", ParamType::Float, "logits are divided by this before the cross-entropy").default("200.0").min(1e-6),
];

/// GraSP as in Synaptic-Flow: score = w * (H g) at temperature T, signed; the lowest are
/// pruned (equivalently the highest -w*Hg of the GraSP paper are removed).
#[derive(Default)]
struct Grasp;

impl PrunerPlugin for Grasp {
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let split = scoring_split(params, ctx)?;
        check_classification(&split, "grasp")?;
        let objective = Objective::CrossEntropy { temperature: params.f64("temperature")? as f32 };
        let w = masked(ctx);
        let g = gradients(ctx.arch, &w, None, &split, objective)?;
        let hg = hessian_gradient_product(ctx.arch, &w, None, &split, objective, &g)?;
        let scores = per_weight(ctx, |name, i, _| w[name].data[i] * hg[name].data[i])?;
        Ok(Scores { scores: normalise(scores, |s| s.abs() + 1e-10), keep_per_layer: None })
    }
}

register_plugin!(Pruner, "grasp", "1.0.0", "GraSP: w * (Hessian-gradient product) at temperature 200, by double backward", GRASP_PARAMS, Grasp);

// ---- SynFlow ---------------------------------------------------------------------------

const SYNFLOW_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("input", ParamType::Choice(&["batch", "ones"]), "`batch`: one real batch of training inputs (the paper's code; an all-ones input is meaningless for one-hot tokens); `ones`: Synaptic-Flow's all-ones input").default("\"batch\""),
    BATCH,
    ParamSpec::new("rounds", ParamType::Int, "scoring rounds (1 as the paper's code; the SynFlow paper uses 100 with the exponential schedule)").default("1").min(1.0),
    ParamSpec::new("precision", ParamType::Choice(&["f32", "f32_rescaled"]), "`f32`: score as the reference code; `f32_rescaled`: divide each layer's |w| by its maximum first, so deep products neither overflow nor underflow (the ranking is unchanged for bias-free ReLU networks, whose output is homogeneous in each layer)").default("\"f32\""),
];

/// SynFlow: with every weight replaced by |w|, R = sum of the outputs; score = |w * dR/dw|.
#[derive(Default)]
struct Synflow;

impl PrunerPlugin for Synflow {
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let mut split = scoring_split(params, ctx)?;
        if params.str("input")? == "ones" {
            split.x.data.iter_mut().for_each(|v| *v = 1.0);
        }
        let mut w = masked(ctx);
        for t in w.values_mut() {
            t.data.iter_mut().for_each(|v| *v = v.abs());
        }
        if params.str("precision")? == "f32_rescaled" {
            for (name, t) in w.iter_mut() {
                let max = t.data.iter().fold(0.0f32, |a, b| a.max(*b));
                if ctx.mask.contains_key(name) && max > 0.0 {
                    t.data.iter_mut().for_each(|v| *v /= max);
                }
            }
        }
        let g = gradients(ctx.arch, &w, None, &split, Objective::SumOutputs)?;
        let scores = per_weight(ctx, |name, i, _| (w[name].data[i] * g[name].data[i]).abs())?;
        Ok(Scores { scores, keep_per_layer: None })
    }

    fn rounds(&self, params: &Params) -> usize {
        params.usize("rounds").unwrap_or(1)
    }
}

register_plugin!(Pruner, "synflow", "1.0.0", "SynFlow: |w * dR/dw| of the |w|-linearised network, one or many rounds", SYNFLOW_PARAMS, Synflow);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ticketlab_core::data::{Dataset, DatasetInfo};
    use ticketlab_core::plugin::StageContext;
    use ticketlab_core::tensor::{Architecture, GraphBuilder, Init, MaskSet, ParamDef, Var};

    use super::*;

    /// logits = x @ A @ B with A [2, 2], B [2, 2]: small enough to score by hand.
    struct Linear2;

    impl Architecture for Linear2 {
        fn parameters(&self) -> Vec<ParamDef> {
            ["a", "b"].iter().map(|n| ParamDef { name: n.to_string(), shape: vec![2, 2], init: Init::Zeros, prunable: true }).collect()
        }
        fn forward(&self, g: &mut GraphBuilder, p: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
            let h = g.matmul(x, p["a"])?;
            g.matmul(h, p["b"])
        }
    }

    fn fixture() -> (NamedTensors, MaskSet, Dataset) {
        let p: NamedTensors = [
            ("a".to_string(), HostTensor::new(vec![2, 2], vec![1.0, -2.0, 0.5, 3.0])),
            ("b".to_string(), HostTensor::new(vec![2, 2], vec![2.0, 1.0, -1.0, 0.25])),
        ]
        .into();
        let m: MaskSet = p.iter().map(|(k, t)| (k.clone(), HostTensor::full(t.shape.clone(), 1.0))).collect();
        let split = Split { x: HostTensor::new(vec![1, 2], vec![1.0, 2.0]), y: Targets::Classes { labels: vec![0], n_classes: 2 } };
        let data = Dataset { description: String::new(), info: DatasetInfo { input_shape: vec![2], output_dim: 2, tokens: None }, train: split.clone(), test: split };
        (p, m, data)
    }

    fn ctx<'a>(p: &'a NamedTensors, m: &'a MaskSet, d: &'a Dataset, sc: &'a StageContext) -> PruneContext<'a> {
        PruneContext { arch: &Linear2, params: p, mask: m, reference_mask: None, data: d, ctx: sc, round: (0, 1) }
    }

    fn params() -> Params {
        Params::new().with("batch", 0).with("temperature", 1.0).with("input", "batch").with("rounds", 1).with("precision", "f32")
    }

    #[test]
    fn synflow_scores_by_hand() {
        // R = sum(x |A| |B|): dR/d|A|_ij = x_i * sum_k |B|_jk; dR/d|B|_jk = (x|A|)_j.
        let (p, m, d) = fixture();
        let sc = StageContext { stage: "s".into(), seed: 0, base_dir: ".".into() };
        let s = Synflow.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        let (absb_rows, xa) = ([3.0f32, 1.25], [1.0f32 * 1.0 + 2.0 * 0.5, 1.0 * 2.0 + 2.0 * 3.0]);
        let expect_a = [1.0 * 1.0 * absb_rows[0], 2.0 * 1.0 * absb_rows[1], 0.5 * 2.0 * absb_rows[0], 3.0 * 2.0 * absb_rows[1]];
        let expect_b = [2.0 * xa[0], 1.0 * xa[0], 1.0 * xa[1], 0.25 * xa[1]];
        for (got, want) in s["a"].data.iter().zip(expect_a).chain(s["b"].data.iter().zip(expect_b)) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn snip_is_abs_gradient_times_weight() {
        let (p, m, d) = fixture();
        let sc = StageContext { stage: "s".into(), seed: 0, base_dir: ".".into() };
        let s = Snip.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        // logits = [1,2] A B = [2, 4] B = [0, 2.5]; softmax; dL/dlogits = softmax - onehot(0).
        let (z0, z1) = (0.0f64, 2.5f64);
        let e = (z0.exp() + z1.exp()).ln();
        let dz = [(z0 - e).exp() - 1.0, (z1 - e).exp()];
        let h = [2.0, 4.0];
        let gb = [h[0] * dz[0], h[0] * dz[1], h[1] * dz[0], h[1] * dz[1]];
        let raw: Vec<f64> = gb.iter().zip([2.0, 1.0, -1.0, 0.25]).map(|(g, w)| (g * w as f64).abs()).collect();
        let ga = [1.0 * (2.0 * dz[0] + 1.0 * dz[1]), 1.0 * (-dz[0] + 0.25 * dz[1]), 2.0 * (2.0 * dz[0] + dz[1]), 2.0 * (-dz[0] + 0.25 * dz[1])];
        let raw_a: Vec<f64> = ga.iter().zip([1.0, -2.0, 0.5, 3.0]).map(|(g, w)| (g * w).abs()).collect();
        let total: f64 = raw.iter().chain(&raw_a).sum();
        for (got, want) in s["b"].data.iter().zip(&raw).chain(s["a"].data.iter().zip(&raw_a)) {
            assert!((f64::from(*got) - want / total).abs() < 1e-5, "{got} vs {}", want / total);
        }
    }

    #[test]
    fn grasp_is_signed_and_magnitude_is_abs() {
        let (p, m, d) = fixture();
        let sc = StageContext { stage: "s".into(), seed: 0, base_dir: ".".into() };
        let g = Grasp.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        let sum: f32 = g.values().flat_map(|t| t.data.iter()).sum();
        assert!((sum.abs() - 1.0).abs() < 1e-3, "normalised by |sum|: {sum}");
        let mag = Magnitude.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        assert_eq!(mag["a"].data, vec![1.0, 2.0, 0.5, 3.0]);
    }

    #[test]
    fn random_scores_are_seeded_and_shuffle_needs_a_reference() {
        let (p, m, d) = fixture();
        let sc = StageContext { stage: "s".into(), seed: 7, base_dir: ".".into() };
        let a = Random.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        let b = Random.score(&params(), &ctx(&p, &m, &d, &sc)).unwrap().scores;
        assert_eq!(a, b);
        assert!(Shuffle.score(&params(), &ctx(&p, &m, &d, &sc)).is_err());
        let mut c = ctx(&p, &m, &d, &sc);
        let reference: MaskSet = [("a".to_string(), HostTensor::new(vec![2, 2], vec![1.0, 0.0, 0.0, 1.0])), ("b".to_string(), HostTensor::new(vec![2, 2], vec![1.0, 1.0, 1.0, 0.0]))].into();
        c.reference_mask = Some(&reference);
        let s = Shuffle.score(&params(), &c).unwrap();
        assert_eq!(s.keep_per_layer.unwrap(), BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 3)]));
    }
}
