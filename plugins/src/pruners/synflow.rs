//! SynFlow (Tanaka et al.; Synaptic-Flow's implementation, ANCHORS.md b).
//!
//! Every parameter is replaced by `|θ|` (the current mask applied), `R` is the sum of the
//! network's outputs on the scoring input, and the score is `|θ ⊙ ∂R/∂θ|`. Masked weights score
//! exactly 0.
//!
//! - `input: batch` (default, as the paper's code): the training examples (all, or `batch` of
//!   them). Synaptic-Flow's all-ones input is meaningless for one-hot tokens.
//! - `input: ones`: one all-ones example, as Synaptic-Flow.
//! - `rounds`: 1 as the paper's code; the SynFlow paper uses 100 with the core's exponential
//!   `schedule`, re-scoring the pruned network each round.
//! - `precision`: the tensor engine computes in f32 only, so true f64 scoring (which
//!   Synaptic-Flow added and reverted) is not offered. `f32` scores as the released reference
//!   code. `f32_rescaled` divides every parameter's `|θ|` by its maximum before scoring so that
//!   long products neither overflow nor underflow; for bias-free ReLU networks (every built-in
//!   MLP) the output is positively homogeneous of degree 1 in each parameter tensor, so every
//!   score is multiplied by the same positive constant and the ranking is unchanged. For other
//!   networks (biases, attention, normalisation) the rescaled ranking can differ.

use ticketlab_api::plugin::{ParamSpec, ParamType, Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::tensor::HostTensor;
use ticketlab_api::{Result, register_plugin};
use ticketlab_tensor::{Objective, gradients};

use super::common::{BATCH, data, masked, per_weight, scoring_split, training_examples};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("input", ParamType::Choice(&["batch", "ones"]), "`batch`: training inputs (the paper's code); `ones`: one all-ones input (Synaptic-Flow)").default("\"batch\""),
    BATCH,
    ParamSpec::new("rounds", ParamType::Int, "scoring rounds (1 as the paper's code; the SynFlow paper uses 100 with `schedule: exponential`)").default("1").range(1.0, 10000.0),
    ParamSpec::new(
        "precision",
        ParamType::Choice(&["f32", "f32_rescaled"]),
        "`f32`: as the reference code; `f32_rescaled`: every |w| divided by its tensor's maximum first (no overflow or underflow; the same ranking for bias-free ReLU networks). f64 is not available: the engine computes in f32",
    )
    .default("\"f32\""),
];

/// `|θ ⊙ ∂R/∂θ|` of the linearised network.
#[derive(Default)]
pub(crate) struct Synflow;

impl PrunerPlugin for Synflow {
    /// Only a `batch` subset of the training split is drawn with the seed.
    fn uses_seed(&self, params: &Params) -> bool {
        params.usize("batch").map_or(true, |b| b != 0)
    }

    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let split = match params.str("input")? {
            "ones" => {
                training_examples(ctx)?;
                let one = data(ctx)?.train.select(&[0]);
                let shape = one.x.shape.clone();
                ticketlab_api::data::Split { x: HostTensor::full(shape, 1.0), y: one.y }
            }
            _ => scoring_split(params, ctx)?,
        };
        let mut w = masked(ctx);
        let rescale = params.str("precision")? == "f32_rescaled";
        for t in w.values_mut() {
            t.data.iter_mut().for_each(|v| *v = v.abs());
            let max = t.data.iter().fold(0.0f32, |a, b| a.max(*b));
            if rescale && max > 0.0 {
                t.data.iter_mut().for_each(|v| *v /= max);
            }
        }
        let g =
            gradients(ctx.arch, &w, None, &split, Objective::SumOutputs, ctx.ctx.runtime.device)?;
        let scores = per_weight(ctx, |name, i, _| (w[name].data[i] * g[name].data[i]).abs())?;
        Ok(Scores { scores, keep_per_layer: None })
    }

    fn rounds(&self, params: &Params) -> usize {
        params.usize("rounds").unwrap_or(1).max(1)
    }
}

register_plugin!(
    Pruner,
    "synflow",
    "1.0.0",
    "SynFlow: |w * dR/dw| of the |w|-linearised network, one or many rounds",
    PARAMS,
    Synflow
);
