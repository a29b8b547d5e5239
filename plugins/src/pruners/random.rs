//! Random pruning and the shuffled-mask control.
//!
//! - `random`: seeded `N(0, 1)` scores, as Synaptic-Flow's `Rand`; with the core's exact k this
//!   is a uniformly random subset of exactly k alive weights (globally, or per layer with
//!   `scope: layerwise`). A pruning-at-initialisation baseline.
//! - `shuffle`: a *structure control* (OpenLTH's layer-wise random branch). It needs the mask to
//!   shuffle on its `mask` input and keeps each layer's kept count of that mask, choosing which
//!   weights at random: per layer, a uniformly random permutation of the reference mask. `rate`
//!   and `scope` are ignored; the mask artifact records the realised rate. (Synaptic-Flow's
//!   `--shuffle` is a no-op by code reading, ANCHORS.md b.)

use std::collections::BTreeMap;

use ticketlab_api::plugin::{Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::{Error, Result, register_plugin};

use super::common::gaussian_scores;

/// Seeded Gaussian scores.
#[derive(Default)]
pub(crate) struct Random;

impl PrunerPlugin for Random {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        Ok(Scores { scores: gaussian_scores(ctx), keep_per_layer: None })
    }
}

register_plugin!(
    Pruner,
    "random",
    "1.0.0",
    "Random exact-k pruning (seeded Gaussian scores), global or layer-wise",
    &[],
    Random
);

/// A reference mask's per-layer counts with randomly chosen weights.
#[derive(Default)]
pub(crate) struct Shuffle;

impl PrunerPlugin for Shuffle {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let reference = ctx.reference_mask.ok_or_else(|| {
            Error::plugin(
                "pruner/shuffle",
                "needs the mask to shuffle: connect a prune stage to this stage's `mask` input",
            )
        })?;
        let mut keep = BTreeMap::new();
        for (name, m) in reference {
            let own = ctx.mask.get(name).ok_or_else(|| {
                Error::plugin("pruner/shuffle", format!("the reference mask has layer `{name}`, which is not a prunable layer of this model"))
            })?;
            if own.shape != m.shape {
                return Err(Error::plugin(
                    "pruner/shuffle",
                    format!(
                        "reference mask of `{name}` is {:?}, the layer is {:?}",
                        m.shape, own.shape
                    ),
                ));
            }
            keep.insert(name.clone(), m.data.iter().filter(|v| **v != 0.0).count());
        }
        Ok(Scores { scores: gaussian_scores(ctx), keep_per_layer: Some(keep) })
    }
}

register_plugin!(
    Pruner,
    "shuffle",
    "1.0.0",
    "Control: a reference mask's per-layer densities with randomly chosen weights",
    &[],
    Shuffle
);
