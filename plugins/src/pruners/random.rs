//! Random pruning and the shuffled-mask control.
//!
//! - `random`: seeded `N(0, 1)` scores, as Synaptic-Flow's `Rand`; with the core's exact k this
//!   is a uniformly random subset of exactly k alive weights (globally, or per layer with
//!   `scope: layerwise`). A pruning-at-initialisation baseline.
//! - `shuffle`: a *structure control* (OpenLTH's layer-wise random branch). It needs the mask to
//!   shuffle on its `mask` input and keeps each layer's kept count of that mask, choosing which
//!   weights at random: per layer, a uniformly random permutation of the reference mask; with
//!   `preserve: rows`, each row keeps its count (a neuron keeps its number of incoming weights),
//!   permuted within the row. `rate` and `scope` are ignored; the mask artifact records the
//!   realised rate. (Synaptic-Flow's
//!   `--shuffle` is a no-op by code reading, ANCHORS.md b.)

use std::collections::BTreeMap;

use ticketlab_api::plugin::{ParamSpec, ParamType, Params, PruneContext, PrunerPlugin, Scores};
use ticketlab_api::{Error, Result, register_plugin};

use super::common::gaussian_scores;

/// Seeded Gaussian scores.
#[derive(Default)]
pub(crate) struct Random;

impl PrunerPlugin for Random {
    fn score(&self, _: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        Ok(Scores { scores: gaussian_scores(ctx), keep_per_layer: None })
    }

    fn needs_data(&self, _: &Params) -> bool {
        false
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

/// A reference mask's per-layer (or per-row) counts with randomly chosen weights.
#[derive(Default)]
pub(crate) struct Shuffle;

/// What a shuffled mask keeps of its reference.
const PRESERVE: ParamSpec = ParamSpec::new(
    "preserve",
    ParamType::Choice(&["layer", "rows"]),
    "`layer`: each layer's count of kept weights, anywhere in the layer; `rows`: each row's count (a neuron's kept incoming weights, for a weight of shape [out, in]), anywhere in the row",
)
.default("\"layer\"");

impl PrunerPlugin for Shuffle {
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores> {
        let reference = ctx.reference_mask.ok_or_else(|| {
            Error::plugin(
                "pruner/shuffle",
                "needs the mask to shuffle: connect a prune stage to this stage's `mask` input",
            )
        })?;
        let rows = params.str("preserve")? == "rows";
        let mut scores = gaussian_scores(ctx);
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
            if rows && let Some(layer) = scores.get_mut(name) {
                keep_row_counts(&m.data, &mut layer.data, m.shape.first().copied().unwrap_or(1));
            }
        }
        Ok(Scores { scores, keep_per_layer: Some(keep) })
    }

    fn needs_data(&self, _: &Params) -> bool {
        false
    }
}

/// Turns a layer's random scores into 1 for the highest-scored `c` weights of every row (`c`
/// that row's count in `reference`) and 0 elsewhere, so that the layer's top count picks
/// exactly those: each row keeps its count at random positions.
fn keep_row_counts(reference: &[f32], scores: &mut [f32], rows: usize) {
    let width = reference.len() / rows.max(1);
    if width == 0 {
        return;
    }
    for (row_ref, row) in reference.chunks(width).zip(scores.chunks_mut(width)) {
        let count = row_ref.iter().filter(|v| **v != 0.0).count();
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
        let mut chosen = vec![0.0f32; row.len()];
        order.iter().take(count).for_each(|&i| chosen[i] = 1.0);
        row.copy_from_slice(&chosen);
    }
}

register_plugin!(
    Pruner,
    "shuffle",
    "1.0.0",
    "Control: a reference mask's per-layer (or per-row) densities with randomly chosen weights",
    &[PRESERVE],
    Shuffle
);
