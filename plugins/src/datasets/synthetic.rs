//! Synthetic tasks of the paper's figure 2: polynomial regression and sparse parity
//! (PAPER-SPEC sections 1.4 and 1.5, with its DEFAULT choices).
//!
//! Both draw everything (β, then the training examples, then the test examples) from one
//! ChaCha8 stream seeded with the stage seed, so a dataset is a pure function of its parameters
//! and seed. Polynomial targets are `[n, 1]` regression values (train it with `loss: mse`);
//! sparse-parity inputs are bits written as 0.0 and 1.0 (not ±1) and the label, one of 2
//! classes, is the parity of the first `k` bits. No sparse-parity test input is also a training
//! input: a test draw that hits one is drawn again (or, when the training split holds more than
//! 15/16 of all `2^n` inputs, the test inputs are drawn uniformly from the ones it does not
//! hold). Training inputs may repeat, as independent draws do.
//!
//! Sizes are bounded so that absurd parameters are an error, not an out-of-memory abort: at
//! most [`MAX_EXAMPLES`] examples per split and [`MAX_VALUES`] input values in all.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use ticketlab_api::data::{Dataset, DatasetInfo, DatasetShape, Split, Targets};
use ticketlab_api::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_api::tensor::{HostTensor, standard_normal};
use ticketlab_api::{Error, Result, register_plugin};

/// The most examples in one split (the paper's tasks use 100 to 1000).
pub const MAX_EXAMPLES: usize = 1_000_000;

/// The most input values (examples times input width, both splits together): 2^28 floats, 1 GiB.
pub const MAX_VALUES: usize = 1 << 28;

/// The most input features (`dim`, `n`).
const MAX_WIDTH: f64 = 100_000.0;

/// The shape of a task of `n_train` and `n_test` vectors whose width is the parameter `width`,
/// with `output_dim` outputs.
fn vector_shape(params: &Params, width: &str, output_dim: usize) -> Option<DatasetShape> {
    let info =
        DatasetInfo { input_shape: vec![params.usize(width).ok()?], output_dim, tokens: None };
    Some(DatasetShape {
        info,
        train: params.usize("n_train").ok()?,
        test: params.usize("n_test").ok()?,
    })
}

/// Refuses splits of `n_train + n_test` examples of `width` values beyond [`MAX_VALUES`].
fn check_size(width_param: &str, width: usize, n_train: usize, n_test: usize) -> Result<()> {
    let values = n_train.saturating_add(n_test).saturating_mul(width);
    if values > MAX_VALUES {
        return Err(Error::param(
            width_param,
            format!(
                "{n_train} + {n_test} examples of {width} values are {values} input values, more than this task builds \
                 (at most 2^28 = {MAX_VALUES}, 1 GiB of floats); lower `n_train`, `n_test` or `{width_param}`"
            ),
        ));
    }
    Ok(())
}

const POLY_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("dim", ParamType::Int, "input dimension d").default("40").range(1.0, MAX_WIDTH),
    ParamSpec::new("n_train", ParamType::Int, "training examples")
        .default("100")
        .range(1.0, MAX_EXAMPLES as f64),
    ParamSpec::new("n_test", ParamType::Int, "test examples")
        .default("100")
        .range(1.0, MAX_EXAMPLES as f64),
];

/// `y = (β·x)² / 2` with `x ~ N(0, I/d)` and `β ~ N(0, I)` (Kumar et al.).
#[derive(Default)]
struct Polynomial;

impl DatasetPlugin for Polynomial {
    fn shape(&self, params: &Params) -> Option<DatasetShape> {
        vector_shape(params, "dim", 1)
    }

    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let (d, n_train, n_test) =
            (params.usize("dim")?, params.usize("n_train")?, params.usize("n_test")?);
        check_size("dim", d, n_train, n_test)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
        let beta: Vec<f64> = (0..d).map(|_| standard_normal(&mut rng)).collect();
        let mut split = |n: usize| {
            let x: Vec<f64> =
                (0..n * d).map(|_| standard_normal(&mut rng) / (d as f64).sqrt()).collect();
            let y: Vec<f32> = (0..n)
                .map(|i| {
                    (x[i * d..(i + 1) * d]
                        .iter()
                        .zip(&beta)
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                        .powi(2)
                        / 2.0) as f32
                })
                .collect();
            Split {
                x: HostTensor::new(vec![n, d], x.into_iter().map(|v| v as f32).collect()),
                y: Targets::Regression { values: HostTensor::new(vec![n, 1], y) },
            }
        };
        let (train, test) = (split(n_train), split(n_test));
        Ok(Dataset {
            description: format!(
                "polynomial regression y = (b.x)^2/2, d = {d}, {n_train} train / {n_test} test"
            ),
            info: DatasetInfo { input_shape: vec![d], output_dim: 1, tokens: None },
            train,
            test,
        })
    }
}

register_plugin!(
    Dataset,
    "polynomial",
    "1.0.0",
    "Polynomial regression y = (beta.x)^2/2 with Gaussian inputs (use loss: mse)",
    POLY_PARAMS,
    Polynomial
);

const PARITY_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("n", ParamType::Int, "input bits").default("40").range(1.0, MAX_WIDTH),
    ParamSpec::new("k", ParamType::Int, "the label is the parity of the first k bits")
        .default("3")
        .range(1.0, MAX_WIDTH),
    ParamSpec::new("n_train", ParamType::Int, "training examples (independent draws; may repeat)")
        .default("1000")
        .range(1.0, MAX_EXAMPLES as f64),
    ParamSpec::new("n_test", ParamType::Int, "test examples, none of them a training input")
        .default("1000")
        .range(1.0, MAX_EXAMPLES as f64),
];

/// (n, k) sparse parity over {0, 1}ⁿ inputs (as 0.0 / 1.0), 2 classes.
#[derive(Default)]
struct SparseParity;

/// One input of `n` bits packed into words, bit `j` of the input at bit `j % 64` of word `j / 64`.
type Packed = Vec<u64>;

fn pack(bits: &[bool]) -> Packed {
    let mut words = vec![0u64; bits.len().div_ceil(64)];
    for (j, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        words[j / 64] |= 1 << (j % 64);
    }
    words
}

/// The split of `inputs` (each `n` bits) with the parity of the first `k` bits as labels.
fn parity_split(inputs: &[Vec<bool>], k: usize) -> Split {
    let n = inputs.first().map_or(0, Vec::len);
    let bits: Vec<f32> = inputs.iter().flatten().map(|b| if *b { 1.0 } else { 0.0 }).collect();
    let labels = inputs.iter().map(|x| x[..k].iter().filter(|b| **b).count() as u32 % 2).collect();
    Split {
        x: HostTensor::new(vec![inputs.len(), n], bits),
        y: Targets::Classes { labels, n_classes: 2 },
    }
}

/// `m` test inputs of `n` bits, none of them in `train`.
fn disjoint_test_inputs(
    rng: &mut impl Rng,
    n: usize,
    m: usize,
    train: &HashSet<Packed>,
) -> Result<Vec<Vec<bool>>> {
    // Only small `n` can run out of inputs: `train` holds at most MAX_EXAMPLES < 2^20 of them.
    let space = if n < 64 { Some(1u64 << n) } else { None };
    match space {
        Some(space) if train.len() as u64 >= space => Err(Error::param(
            "n_train",
            format!(
                "the training split holds all 2^{n} = {space} inputs of {n} bits, so no test input is left; lower `n_train` or raise `n`"
            ),
        )),
        // Mostly taken: draw from the inputs that are left.
        Some(space) if (space - train.len() as u64) * 16 < space => {
            let free: Vec<u64> = (0..space).filter(|v| !train.contains(&vec![*v])).collect();
            Ok((0..m)
                .map(|_| free[rng.gen_range(0..free.len())])
                .map(|v| (0..n).map(|j| (v >> j) & 1 == 1).collect())
                .collect())
        }
        // Otherwise draw as for training, again while the draw is a training input (fewer than
        // 16 tries per input on average).
        _ => Ok((0..m)
            .map(|_| {
                loop {
                    let x: Vec<bool> = (0..n).map(|_| rng.r#gen::<bool>()).collect();
                    if !train.contains(&pack(&x)) {
                        break x;
                    }
                }
            })
            .collect()),
    }
}

impl DatasetPlugin for SparseParity {
    fn shape(&self, params: &Params) -> Option<DatasetShape> {
        vector_shape(params, "n", 2)
    }

    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let (n, k) = (params.usize("n")?, params.usize("k")?);
        if k > n {
            return Err(Error::param(
                "k",
                format!("k = {k} relevant bits but only n = {n} inputs"),
            ));
        }
        let (n_train, n_test) = (params.usize("n_train")?, params.usize("n_test")?);
        check_size("n", n, n_train, n_test)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed);
        let train: Vec<Vec<bool>> =
            (0..n_train).map(|_| (0..n).map(|_| rng.r#gen::<bool>()).collect()).collect();
        let seen: HashSet<Packed> = train.iter().map(|x| pack(x)).collect();
        let test = disjoint_test_inputs(&mut rng, n, n_test, &seen)?;
        let (train, test) = (parity_split(&train, k), parity_split(&test, k));
        Ok(Dataset {
            description: format!(
                "sparse parity ({n}, {k}): {} train / {} test",
                train.len(),
                test.len()
            ),
            info: DatasetInfo { input_shape: vec![n], output_dim: 2, tokens: None },
            train,
            test,
        })
    }
}

register_plugin!(
    Dataset,
    "sparse_parity",
    "1.0.0",
    "(n, k) sparse parity over {0,1}^n, 2 classes, test inputs disjoint from training",
    PARITY_PARAMS,
    SparseParity
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StageContext {
        StageContext::new("d", 4, ".")
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

    /// Every input row of a split, as bits.
    fn rows(s: &Split) -> Vec<Vec<u8>> {
        let n = s.x.shape[1];
        (0..s.len())
            .map(|i| s.x.data[i * n..(i + 1) * n].iter().map(|v| *v as u8).collect())
            .collect()
    }

    #[test]
    fn parity_test_inputs_are_never_training_inputs() {
        let parity = |n: usize, n_train: usize, n_test: usize, seed: u64| {
            let p = Params::new()
                .with("n", n)
                .with("k", 2.min(n))
                .with("n_train", n_train)
                .with("n_test", n_test);
            SparseParity.build(&p, &StageContext { seed, ..ctx() })
        };
        // From many collisions (n = 4 or 6: most test draws hit a training input) through the
        // crowded case (n = 8 with 900 draws: about 248 of the 256 inputs in training, so the
        // test inputs come from the rest) to the default width, where a collision is rare.
        for (n, n_train, n_test) in [(4, 20, 30), (6, 50, 200), (8, 900, 100), (40, 1000, 1000)] {
            for seed in 0..5 {
                let d = parity(n, n_train, n_test, seed).unwrap();
                assert_eq!((d.train.len(), d.test.len()), (n_train, n_test));
                let train: HashSet<Vec<u8>> = rows(&d.train).into_iter().collect();
                let shared = rows(&d.test).into_iter().filter(|r| train.contains(r)).count();
                assert_eq!(shared, 0, "n = {n}, seed {seed}: test inputs also in training");
                let Targets::Classes { labels, .. } = &d.test.y else { panic!() };
                for (r, l) in rows(&d.test).iter().zip(labels) {
                    assert_eq!(u32::from(r[0] + r[1]) % 2, *l, "test labels are parities too");
                }
                assert_eq!(d, parity(n, n_train, n_test, seed).unwrap(), "deterministic");
            }
        }
        // Training that covers every input leaves no test input.
        let err = parity(2, 100, 10, 0).unwrap_err().to_string();
        assert!(err.contains("all 2^2 = 4 inputs"), "{err}");
    }

    #[test]
    fn crowded_test_inputs_come_from_the_inputs_left() {
        // Every 8-bit input but 5 and 200 is a training input.
        let train: HashSet<Packed> =
            (0..256u64).filter(|v| *v != 5 && *v != 200).map(|v| vec![v]).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let test = disjoint_test_inputs(&mut rng, 8, 50, &train).unwrap();
        let values: Vec<u64> = test.iter().map(|x| pack(x)[0]).collect();
        assert!(values.iter().all(|v| *v == 5 || *v == 200), "{values:?}");
        assert!(values.contains(&5) && values.contains(&200), "both are drawn: {values:?}");
        assert_eq!(
            pack(&test[values.iter().position(|v| *v == 5).unwrap()]),
            vec![5],
            "bit j of the input is bit j of the word"
        );
    }

    #[test]
    fn parity_training_inputs_are_the_seeded_bit_stream() {
        // The training split is the first n_train * n bits of the stage's stream, row by row.
        let p = Params::new().with("n", 7).with("k", 3).with("n_train", 9).with("n_test", 4);
        let d = SparseParity.build(&p, &ctx()).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let bits: Vec<f32> = (0..63).map(|_| if rng.r#gen::<bool>() { 1.0 } else { 0.0 }).collect();
        assert_eq!(d.train.x.data, bits);
    }

    #[test]
    fn absurd_sizes_are_refused_before_allocating() {
        let err = SparseParity
            .build(
                &Params::new()
                    .with("n", 100_000)
                    .with("k", 3)
                    .with("n_train", 1_000_000)
                    .with("n_test", 1000),
                &ctx(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("100100000000 input values") && err.contains("at most 2^28"), "{err}");
        let err = Polynomial
            .build(
                &Params::new().with("dim", 50_000).with("n_train", 10_000).with("n_test", 10_000),
                &ctx(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("1000000000 input values"), "{err}");
        // The schema bounds each parameter too, so the checker refuses them before any stage runs.
        for (spec, max) in POLY_PARAMS.iter().chain(PARITY_PARAMS).map(|s| (s.name, s.max)) {
            assert!(max.is_some(), "`{spec}` has no upper bound");
        }
        assert!(PARITY_PARAMS[2].check(&serde_json::json!(MAX_EXAMPLES + 1)).is_err());
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
        let one = Polynomial
            .build(&Params::new().with("dim", 1).with("n_train", 20).with("n_test", 20), &ctx())
            .unwrap();
        let ratios: Vec<f64> = [&one.train, &one.test]
            .iter()
            .flat_map(|s| {
                let Targets::Regression { values } = &s.y else { panic!() };
                s.x.data
                    .iter()
                    .zip(&values.data)
                    .map(|(x, y)| f64::from(*y) / f64::from(*x).powi(2))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(ratios.iter().all(|r| (r - ratios[0]).abs() < 1e-4 * ratios[0]), "{ratios:?}");
        // x ~ N(0, I/d): the mean square of the inputs is about 1/d.
        let big = Polynomial
            .build(&Params::new().with("dim", 40).with("n_train", 500).with("n_test", 1), &ctx())
            .unwrap();
        let ms = big.train.x.data.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
            / big.train.x.data.len() as f64;
        assert!((ms * 40.0 - 1.0).abs() < 0.05, "{ms}");
    }
}
