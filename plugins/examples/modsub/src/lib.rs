//! `modsub`: a ticketlab task in one file: predict `(a - b) mod p` from the tokens `a` and `b`.
//!
//! The layout is the built-in `modular` task's: each example is two one-hot tokens (`x` of
//! shape `[2, p]`), the label is one of `p` classes. Every ordered pair `(a, b)` with
//! `a, b < p` appears once (subtraction is not symmetric); the pairs are listed in order
//! `(0,0), (0,1), …`, shuffled with the SDK's `Rng::new(split_seed)` and the first
//! `floor(train_fraction * p²)` become the training split.
//!
//! The one-hot inputs take `p² · 2p = 2p³` floats, so `p` is capped at [`MAX_P`] (2·256³ floats
//! are 128 MiB; p = 1000 would be 8 GB).

use ticketlab_plugin_sdk::{
    Dataset, DatasetOut, ParamDecl, Params, Rng, SplitOut, TargetKind, TokenLayout, export_dataset,
};

/// The largest modulus: the inputs of every pair take `2p³` floats.
const MAX_P: u64 = 256;

#[derive(Default)]
struct ModSub;

impl Dataset for ModSub {
    const NAME: &'static str = "modsub";
    const VERSION: &'static str = "0.1.0";
    const SUMMARY: &'static str =
        "Modular subtraction (a - b) mod p with one-hot tokens, every ordered pair";

    fn params() -> Vec<ParamDecl> {
        vec![
            ParamDecl::int("p", "the modulus (and vocabulary size), at most 256: the one-hot inputs take 2p³ floats").default(23).range(2.0, MAX_P as f64),
            ParamDecl::float("train_fraction", "fraction of the p² pairs used for training").default(0.4).range_exclusive(0.0, 1.0),
            ParamDecl::int("split_seed", "seed of the train/test shuffle; -1 = the stage's derived seed").default(-1).min(-1.0),
        ]
    }

    fn build(&self, params: &Params, seed: u64) -> Result<DatasetOut, String> {
        let p = params.u64("p")?;
        if p > MAX_P {
            let floats = 2.0 * (p as f64).powi(3);
            return Err(format!(
                "p = {p} needs 2p³ = {floats:.0} one-hot input floats ({:.1} GiB); this task allows p up to {MAX_P}",
                floats * 4.0 / f64::from(1u32 << 30)
            ));
        }
        let p = p as usize;
        let fraction = params.f64("train_fraction")?;
        let split_seed = match params.i64("split_seed")? {
            -1 => seed,
            s => s as u64,
        };
        let mut pairs: Vec<(usize, usize)> =
            (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
        Rng::new(split_seed).shuffle(&mut pairs);
        let n_train = (fraction * pairs.len() as f64) as usize;
        if n_train == 0 || n_train == pairs.len() {
            return Err(format!(
                "train_fraction {fraction} of {} pairs leaves an empty split",
                pairs.len()
            ));
        }
        let split = |pairs: &[(usize, usize)]| {
            let mut x = vec![0.0; pairs.len() * 2 * p];
            let mut y = Vec::with_capacity(pairs.len());
            for (r, &(a, b)) in pairs.iter().enumerate() {
                x[r * 2 * p + a] = 1.0;
                x[r * 2 * p + p + b] = 1.0;
                y.push(((a + p - b) % p) as f32);
            }
            SplitOut { x, y }
        };
        Ok(DatasetOut {
            description: format!(
                "(a-b) mod {p}, {n_train} train / {} test pairs",
                pairs.len() - n_train
            ),
            input_shape: vec![2, p],
            targets: TargetKind::Classes(p),
            tokens: Some(TokenLayout { vocab: p, n_ctx: 2 }),
            train: split(&pairs[..n_train]),
            test: split(&pairs[n_train..]),
        })
    }
}

export_dataset!(ModSub);
