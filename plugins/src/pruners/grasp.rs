//! GraSP as Synaptic-Flow implements it (ANCHORS.md b): with the logits divided by the
//! temperature `T` (200), `g = ∂L/∂w`, `Hg` the Hessian-gradient product by double backward
//! (the gradient of `⟨stop(g), ∂L/∂w⟩`), and the **signed** score `θ ⊙ Hg` normalised by
//! `|Σ| + 1e-10`. The reference prunes the *lowest* `θ ⊙ Hg` (equivalently removes the highest
//! `−θ ⊙ Hg` of the GraSP paper); the core keeps the highest scores, so the score is `θ ⊙ Hg`
//! as is. Classification tasks only (the temperature acts on logits).

use ticketlab_api::data::Targets;
use ticketlab_api::plugin::{ParamSpec, ParamType, Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::{Error, Result, register_plugin};
use ticketlab_tensor::{Objective, gradients, hessian_gradient_product};

use super::common::{BATCH, masked, normalise, per_weight, scoring_split};

const PARAMS: &[ParamSpec] = &[
    BATCH,
    ParamSpec::new(
        "temperature",
        ParamType::Float,
        "the logits are divided by this before the cross-entropy (Synaptic-Flow: 200)",
    )
    .default("200.0")
    .min(1e-6),
];

/// `θ ⊙ Hg`, signed.
#[derive(Default)]
pub(crate) struct Grasp;

impl PrunerPlugin for Grasp {
    /// Only a `batch` subset of the training split is drawn with the seed.
    fn uses_seed(&self, params: &Params) -> bool {
        params.usize("batch").map_or(true, |b| b != 0)
    }

    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let split = scoring_split(params, ctx)?;
        if let Targets::Regression { .. } = split.y {
            return Err(Error::plugin(
                "pruner/grasp",
                "scores the cross-entropy of tempered logits and needs a classification task; use `snip` or `synflow` for regression",
            ));
        }
        let objective = Objective::CrossEntropy { temperature: params.f64("temperature")? as f32 };
        let w = masked(ctx);
        let g = gradients(ctx.arch, &w, None, &split, objective, ctx.ctx.runtime.device)?;
        let hg = hessian_gradient_product(
            ctx.arch,
            &w,
            None,
            &split,
            objective,
            &g,
            ctx.ctx.runtime.device,
        )?;
        let scores = per_weight(ctx, |name, i, _| w[name].data[i] * hg[name].data[i])?;
        Ok(Scores { scores: normalise(scores, |s| s.abs() + 1e-10), keep_per_layer: None })
    }
}

register_plugin!(
    Pruner,
    "grasp",
    "1.0.0",
    "GraSP: w * (Hessian-gradient product) at temperature 200, by double backward",
    PARAMS,
    Grasp
);
