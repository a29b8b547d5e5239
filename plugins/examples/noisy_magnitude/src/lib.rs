//! `noisy_magnitude`: a ticketlab pruner in one file.
//!
//! The score of weight `w` in layer `L` is
//!
//! ```text
//! |w| + noise * mean_L * z
//! ```
//!
//! where `mean_L` is the mean `|w|` over the layer's alive weights (mask 1) and `z` is a
//! standard normal drawn, in weight order, from `Rng::for_stream(seed, layer_name)` of the SDK.
//! `seed` is the prune stage's derived seed unless `noise_seed` sets one. With `noise = 0` it is
//! plain magnitude pruning; larger values interpolate towards a random mask. Use it with
//! `scope: layerwise` to prune every layer at the same rate.

use ticketlab_plugin_sdk::{
    LayerView, ParamDecl, Params, Pruner, Rng, ScoreContext, export_pruner,
};

#[derive(Default)]
struct NoisyMagnitude;

impl Pruner for NoisyMagnitude {
    const NAME: &'static str = "noisy_magnitude";
    const VERSION: &'static str = "0.1.0";
    const SUMMARY: &'static str =
        "Magnitude |w| plus seeded Gaussian noise scaled to each layer's mean |w|";

    fn params() -> Vec<ParamDecl> {
        vec![
            ParamDecl::float("noise", "standard deviation of the noise, relative to the layer's mean |w| over alive weights")
                .default(0.1)
                .range(0.0, 10.0),
            ParamDecl::int("noise_seed", "seed of the noise; -1 = the stage's derived seed").default(-1).min(-1.0),
        ]
    }

    fn score(
        &self,
        params: &Params,
        layers: &[LayerView<'_>],
        ctx: &ScoreContext,
    ) -> Result<Vec<Vec<f32>>, String> {
        let noise = params.f64("noise")?;
        let seed = match params.i64("noise_seed")? {
            -1 => ctx.seed,
            s => s as u64,
        };
        let score_layer = |l: &LayerView<'_>| {
            let alive: Vec<f64> = l
                .weights
                .iter()
                .zip(l.mask)
                .filter(|(_, m)| **m != 0.0)
                .map(|(w, _)| f64::from(w.abs()))
                .collect();
            let mean =
                if alive.is_empty() { 0.0 } else { alive.iter().sum::<f64>() / alive.len() as f64 };
            let mut rng = Rng::for_stream(seed, l.name);
            l.weights
                .iter()
                .map(|w| (f64::from(w.abs()) + noise * mean * rng.normal()) as f32)
                .collect()
        };
        Ok(layers.iter().map(score_layer).collect())
    }
}

export_pruner!(NoisyMagnitude);
