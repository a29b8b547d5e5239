//! Synthetic tasks of the paper's figure 2: polynomial regression and sparse parity
//! (PAPER-SPEC sections 1.4 and 1.5, with its DEFAULT choices).
//!
//! Both draw everything (β, then the training examples, then the test examples) from one
//! ChaCha8 stream seeded with the stage seed, so a dataset is a pure function of its parameters
//! and seed. Polynomial targets are `[n, 1]` regression values (train it with `loss: mse`);
//! sparse-parity inputs are bits written as 0.0 and 1.0 (not ±1) and the label, one of 2
//! classes, is the parity of the first `k` bits.

use rand::{Rng, SeedableRng};
use ticketlab_core::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_core::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_core::tensor::HostTensor;
use ticketlab_core::{Error, Result, register_plugin};

/// One N(0, 1) draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

const POLY_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("dim", ParamType::Int, "input dimension d").default("40").min(1.0),
    ParamSpec::new("n_train", ParamType::Int, "training examples").default("100").min(1.0),
    ParamSpec::new("n_test", ParamType::Int, "test examples").default("100").min(1.0),
];

/// `y = (β·x)² / 2` with `x ~ N(0, I/d)` and `β ~ N(0, I)` (Kumar et al.).
#[derive(Default)]
struct Polynomial;

impl DatasetPlugin for Polynomial {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let (d, n_train, n_test) = (params.usize("dim")?, params.usize("n_train")?, params.usize("n_test")?);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
        let beta: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
        let mut split = |n: usize| {
            let x: Vec<f64> = (0..n * d).map(|_| normal(&mut rng) / (d as f64).sqrt()).collect();
            let y: Vec<f32> = (0..n).map(|i| (x[i * d..(i + 1) * d].iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>().powi(2) / 2.0) as f32).collect();
            Split { x: HostTensor::new(vec![n, d], x.into_iter().map(|v| v as f32).collect()), y: Targets::Regression { values: HostTensor::new(vec![n, 1], y) } }
        };
        let (train, test) = (split(n_train), split(n_test));
        Ok(Dataset { description: format!("polynomial regression y = (b.x)^2/2, d = {d}, {n_train} train / {n_test} test"), info: DatasetInfo { input_shape: vec![d], output_dim: 1, tokens: None }, train, test })
    }
}

register_plugin!(Dataset, "polynomial", "1.0.0", "Polynomial regression y = (beta.x)^2/2 with Gaussian inputs (use loss: mse)", POLY_PARAMS, Polynomial);

const PARITY_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("n", ParamType::Int, "input bits").default("40").min(1.0),
    ParamSpec::new("k", ParamType::Int, "the label is the parity of the first k bits").default("3").min(1.0),
    ParamSpec::new("n_train", ParamType::Int, "training examples").default("1000").min(1.0),
    ParamSpec::new("n_test", ParamType::Int, "test examples").default("1000").min(1.0),
];

/// (n, k) sparse parity over {0, 1}ⁿ inputs (as 0.0 / 1.0), 2 classes.
#[derive(Default)]
struct SparseParity;

impl DatasetPlugin for SparseParity {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let (n, k) = (params.usize("n")?, params.usize("k")?);
        if k > n {
            return Err(Error::param("k", format!("k = {k} relevant bits but only n = {n} inputs")));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
        let mut split = |m: usize| {
            let bits: Vec<f32> = (0..m * n).map(|_| if rng.r#gen::<bool>() { 1.0 } else { 0.0 }).collect();
            let labels = (0..m).map(|i| bits[i * n..i * n + k].iter().map(|b| *b as u32).sum::<u32>() % 2).collect();
            Split { x: HostTensor::new(vec![m, n], bits), y: Targets::Classes { labels, n_classes: 2 } }
        };
        let (train, test) = (split(params.usize("n_train")?), split(params.usize("n_test")?));
        Ok(Dataset { description: format!("sparse parity ({n}, {k}): {} train / {} test", train.len(), test.len()), info: DatasetInfo { input_shape: vec![n], output_dim: 2, tokens: None }, train, test })
    }
}

register_plugin!(Dataset, "sparse_parity", "1.0.0", "(n, k) sparse parity over {0,1}^n, 2 classes", PARITY_PARAMS, SparseParity);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StageContext {
        StageContext { stage: "d".into(), seed: 4, base_dir: ".".into() }
    }

    #[test]
    fn parity_labels_and_sizes() {
        let p = Params::new().with("n", 10).with("k", 3).with("n_train", 50).with("n_test", 20);
        let d = SparseParity.build(&p, &ctx()).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.train.x.shape[1]), (50, 20, 10));
        let Targets::Classes { labels, .. } = &d.train.y else { panic!() };
        for (i, l) in labels.iter().enumerate() {
            let s: f32 = d.train.x.data[i * 10..i * 10 + 3].iter().sum();
            assert_eq!(*l, s as u32 % 2);
        }
        assert!(SparseParity.build(&p.clone().with("k", 11), &ctx()).is_err());
    }

    #[test]
    fn polynomial_targets_are_half_squared_projections() {
        let p = Params::new().with("dim", 5).with("n_train", 8).with("n_test", 4);
        let d = Polynomial.build(&p, &ctx()).unwrap();
        let Targets::Regression { values } = &d.train.y else { panic!() };
        assert_eq!(values.shape, vec![8, 1]);
        assert!(values.data.iter().all(|v| *v >= 0.0));
        assert_eq!(d, Polynomial.build(&p, &ctx()).unwrap());
        // With d = 1, y / x² = β² / 2 is the same for every example, train and test.
        let one = Polynomial.build(&Params::new().with("dim", 1).with("n_train", 20).with("n_test", 20), &ctx()).unwrap();
        let ratios: Vec<f64> = [&one.train, &one.test]
            .iter()
            .flat_map(|s| {
                let Targets::Regression { values } = &s.y else { panic!() };
                s.x.data.iter().zip(&values.data).map(|(x, y)| f64::from(*y) / f64::from(*x).powi(2)).collect::<Vec<_>>()
            })
            .collect();
        assert!(ratios.iter().all(|r| (r - ratios[0]).abs() < 1e-4 * ratios[0]), "{ratios:?}");
        // x ~ N(0, I/d): the mean square of the inputs is about 1/d.
        let big = Polynomial.build(&Params::new().with("dim", 40).with("n_train", 500).with("n_test", 1), &ctx()).unwrap();
        let ms = big.train.x.data.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / big.train.x.data.len() as f64;
        assert!((ms * 40.0 - 1.0).abs() < 0.05, "{ms}");
    }
}
