//! Helpers shared by the pruners: score tensors, masked weights and scoring subsets.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use ticketlab_api::data::{Dataset, Split};
use ticketlab_api::plugin::{ParamSpec, ParamType, Params, PruneContext};
use ticketlab_api::tensor::{HostTensor, NamedTensors, standard_normal};
use ticketlab_api::{Error, Result, seed};
use ticketlab_tensor::pruning::apply_mask;

/// The `batch` parameter of the data-dependent pruners.
pub(crate) const BATCH: ParamSpec = ParamSpec::new(
    "batch",
    ParamType::Int,
    "training examples used for scoring: 0 = the whole training split (as the paper's code, whose one PaI batch holds all 911 pairs); N = a seeded random subset of N",
)
.default("0")
.min(0.0);

/// One score tensor per prunable layer (the layers of the current mask), from
/// `f(layer, flat index, raw weight)`.
pub(crate) fn per_weight(
    ctx: &PruneContext<'_>,
    mut f: impl FnMut(&str, usize, f32) -> f32,
) -> Result<NamedTensors> {
    let mut out = NamedTensors::new();
    for (name, m) in ctx.mask {
        let w = ctx
            .params
            .get(name)
            .ok_or_else(|| Error::param(name, "missing from the scored weights"))?;
        out.insert(
            name.clone(),
            HostTensor::new(
                m.shape.clone(),
                w.data.iter().enumerate().map(|(i, v)| f(name, i, *v)).collect(),
            ),
        );
    }
    Ok(out)
}

/// Every parameter, with the current mask applied to the prunable ones (`w = m ⊙ θ`).
pub(crate) fn masked(ctx: &PruneContext<'_>) -> NamedTensors {
    let mut w = ctx.params.clone();
    apply_mask(&mut w, ctx.mask);
    w
}

/// The dataset of a pruner that scores with data (its `needs_data` is `true`, so the engine
/// passes one; a caller that does not is told to connect it).
pub(crate) fn data<'a>(ctx: &PruneContext<'a>) -> Result<&'a Dataset> {
    ctx.data.ok_or_else(|| {
        Error::param(
            "data",
            "this pruner scores with data: connect a dataset stage to the prune stage's `data` input",
        )
    })
}

/// The training examples used for scoring: all of them, or a subset of `batch` drawn with the
/// stage seed (the same subset in every round).
pub(crate) fn scoring_split(params: &Params, ctx: &PruneContext<'_>) -> Result<Split> {
    let n = training_examples(ctx)?;
    let train = &data(ctx)?.train;
    let batch = params.usize("batch")?;
    if batch == 0 || batch >= n {
        return Ok(train.clone());
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(ctx.ctx.seed));
    idx.truncate(batch);
    Ok(train.select(&idx))
}

/// The number of training examples, refusing an empty training split (data-dependent pruners,
/// and SynFlow's all-ones input, which takes its shape from a training example).
pub(crate) fn training_examples(ctx: &PruneContext<'_>) -> Result<usize> {
    match data(ctx)?.train.len() {
        0 => Err(Error::param(
            "data",
            "the training split is empty; data-dependent pruners need at least one training example",
        )),
        n => Ok(n),
    }
}

/// Divides every score by `norm(Σ scores)` (as the reference code does; a positive divisor
/// leaves the ranking unchanged). Sums are taken in f64.
pub(crate) fn normalise(mut scores: NamedTensors, norm: impl Fn(f64) -> f64) -> NamedTensors {
    let total: f64 = scores.values().flat_map(|t| t.data.iter()).map(|v| f64::from(*v)).sum();
    let d = norm(total);
    if d != 0.0 && d.is_finite() {
        for t in scores.values_mut() {
            t.data.iter_mut().for_each(|v| *v = (f64::from(*v) / d) as f32);
        }
    }
    scores
}

/// Seeded standard-normal scores for every prunable layer: one stream per (stage seed, layer
/// name, round), so a layer's scores do not depend on which other layers exist.
pub(crate) fn gaussian_scores(ctx: &PruneContext<'_>) -> NamedTensors {
    let mut out = NamedTensors::new();
    for (name, m) in ctx.mask {
        let stream = seed::splitmix64(
            ctx.ctx.seed ^ seed::splitmix64(seed::fnv1a(name) ^ ctx.round.0 as u64),
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(stream);
        let data = (0..m.len()).map(|_| standard_normal(&mut rng) as f32).collect();
        out.insert(name.clone(), HostTensor::new(m.shape.clone(), data));
    }
    out
}
