//! SNIP connection sensitivity `|∂L/∂m| = |g ⊙ θ|` (Lee et al.; Synaptic-Flow's mask-gradient
//! version). `g = ∂L/∂w` of the effective weights `w = m ⊙ θ`, from one pass over the scoring
//! examples (the whole training split by default, as the paper's single PaI batch). `L` is the
//! cross-entropy for classification tasks and the mean squared error for regression tasks.
//! Scores are divided by their sum, as the reference code (the ranking is unchanged).

use ticketlab_api::data::Targets;
use ticketlab_api::plugin::{ParamSpec, Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::{Result, register_plugin};
use ticketlab_tensor::{Objective, gradients};

use super::common::{BATCH, masked, normalise, per_weight, scoring_split};

const PARAMS: &[ParamSpec] = &[BATCH];

/// `|g ⊙ θ|`.
#[derive(Default)]
pub(crate) struct Snip;

impl PrunerPlugin for Snip {
    /// Only a `batch` subset of the training split is drawn with the seed.
    fn uses_seed(&self, params: &Params) -> bool {
        params.usize("batch").map_or(true, |b| b != 0)
    }

    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let split = scoring_split(params, ctx)?;
        let objective = match split.y {
            Targets::Classes { .. } => Objective::CrossEntropy { temperature: 1.0 },
            Targets::Regression { .. } => Objective::Mse,
        };
        let w = masked(ctx);
        let g = gradients(ctx.arch, &w, None, &split, objective, ctx.ctx.runtime.device)?;
        let scores = per_weight(ctx, |name, i, _| (g[name].data[i] * w[name].data[i]).abs())?;
        Ok(Scores { scores: normalise(scores, |s| s), keep_per_layer: None })
    }
}

register_plugin!(
    Pruner,
    "snip",
    "1.0.0",
    "SNIP: |g * w| of the training loss (connection sensitivity)",
    PARAMS,
    Snip
);
