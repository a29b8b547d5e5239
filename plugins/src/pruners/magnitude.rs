//! Magnitude pruning: `score = |θ|` of the scored weights (a checkpoint for the grokking
//! ticket, PAPER-SPEC section 4 step 3). Global or layer-wise through the core's `scope`.

use ticketlab_api::plugin::{Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::{Result, register_plugin};

use super::common::per_weight;

/// `|θ|`.
#[derive(Default)]
pub(crate) struct Magnitude;

impl PrunerPlugin for Magnitude {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        Ok(Scores { scores: per_weight(ctx, |_, _, w| w.abs())?, keep_per_layer: None })
    }

    fn uses_seed(&self, _: &Params) -> bool {
        false
    }

    fn needs_data(&self, _: &Params) -> bool {
        false
    }
}

register_plugin!(
    Pruner,
    "magnitude",
    "1.0.0",
    "Magnitude |w|, global or layer-wise (the grokking-ticket mask)",
    &[],
    Magnitude
);
