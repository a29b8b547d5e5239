//! Modular arithmetic: predict `op(a, b) mod p` from the tokens `a` and `b`
//! (PAPER-SPEC sections 1.1 and 1.2).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use ticketlab_api::data::{Dataset, DatasetInfo, DatasetShape, Split, Targets, TokenInfo};
use ticketlab_api::plugin::{DatasetPlugin, ParamSpec, ParamType, Params, StageContext};
use ticketlab_api::tensor::HostTensor;
use ticketlab_api::{Error, Result, register_plugin};

/// The operations of the paper's code (its `slth` branch names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// a + b
    Add,
    /// a - b
    Subtract,
    /// a * b
    Multiply,
    /// a² + b² (x2y2)
    X2Y2,
    /// a² + ab + b² (x2xyy2)
    X2XYY2,
    /// a² + ab + b² + a (x2xyy2x)
    X2XYY2X,
    /// a³ + ab (x3xy)
    X3XY,
    /// a² + ab² + b (x3xy2y)
    X3XY2Y,
    /// a² + ab + b² + a² (x2xyy2x2)
    X2XYY2X2,
    /// a² + ab + b² + b² (x2xyy2y2)
    X2XYY2Y2,
    /// (a + b)² (x22xyy2)
    X22XYY2,
    /// (a + b)² + 2b (x22xyy2y)
    X22XYY2Y,
}

const OPS: &[(&str, Operation)] = &[
    ("add", Operation::Add),
    ("subtract", Operation::Subtract),
    ("multiply", Operation::Multiply),
    ("x2y2", Operation::X2Y2),
    ("x2xyy2", Operation::X2XYY2),
    ("x2xyy2x", Operation::X2XYY2X),
    ("x3xy", Operation::X3XY),
    ("x3xy2y", Operation::X3XY2Y),
    ("x2xyy2x2", Operation::X2XYY2X2),
    ("x2xyy2y2", Operation::X2XYY2Y2),
    ("x22xyy2", Operation::X22XYY2),
    ("x22xyy2y", Operation::X22XYY2Y),
];

impl Operation {
    /// Parses an operation name.
    pub fn parse(name: &str) -> Option<Self> {
        OPS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }

    /// `op(a, b) mod p`, exact in integer arithmetic.
    pub fn apply(self, a: u64, b: u64, p: u64) -> u64 {
        let (a, b) = (a % p, b % p);
        let v = match self {
            Operation::Add => a + b,
            Operation::Subtract => a + p - b,
            Operation::Multiply => a * b,
            Operation::X2Y2 => a * a + b * b,
            Operation::X2XYY2 => a * a + a * b + b * b,
            Operation::X2XYY2X => a * a + a * b + b * b + a,
            Operation::X3XY => a * a % p * a + a * b,
            Operation::X3XY2Y => a * a + a * (b * b % p) + b,
            Operation::X2XYY2X2 => a * a + a * b + b * b + a * a,
            Operation::X2XYY2Y2 => a * a + a * b + b * b + b * b,
            Operation::X22XYY2 => (a + b) * (a + b),
            Operation::X22XYY2Y => (a + b) * (a + b) + 2 * b,
        };
        v % p
    }
}

pub(crate) const PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "op",
        ParamType::Choice(&["add", "subtract", "multiply", "x2y2", "x2xyy2", "x2xyy2x", "x3xy", "x3xy2y", "x2xyy2x2", "x2xyy2y2", "x22xyy2", "x22xyy2y"]),
        "the operation, all mod p (names and formulas of the paper's code): add (a+b), subtract (a-b), multiply (ab), \
         x2y2 (a²+b²), x2xyy2 (a²+ab+b²), x2xyy2x (a²+ab+b²+a), x3xy (a³+ab), x3xy2y (a²+ab²+b), \
         x2xyy2x2 (a²+ab+b²+a²), x2xyy2y2 (a²+ab+b²+b²), x22xyy2 ((a+b)²), x22xyy2y ((a+b)²+2b)",
    )
    .default("\"add\""),
    ParamSpec::new("p", ParamType::Int, "the modulus (and vocabulary size)").default("67").min(2.0),
    ParamSpec::new("pairs", ParamType::Choice(&["symmetric", "all"]), "`symmetric`: pairs a <= b as the paper's code (2278 for p = 67); `all`: every ordered pair").default("\"symmetric\""),
    ParamSpec::new("train_fraction", ParamType::Float, "fraction of pairs used for training (the first int(f*N) after a seeded shuffle)").default("0.4").range_exclusive(0.0, 1.0),
    ParamSpec::new("split_seed", ParamType::Int, "seed of the train/test shuffle; -1 = the stage's derived seed").default("-1").min(-1.0),
    ParamSpec::new("split", ParamType::Choice(&["seeded", "reference"]), "how the pairs are shuffled before the cut: `seeded` (ChaCha8 with the split seed); `reference`: Python's `random.seed(split_seed); random.shuffle(pairs)`, draw for draw, so `split_seed: 0` is the paper's code's seed 0 and its split pair for pair (needs `split_seed` >= 0)").default("\"seeded\"").in_key_unless_default(),
];

/// How the train/test split is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitDraw {
    /// A ChaCha8 shuffle with this seed.
    Seeded(u64),
    /// Python's `random.seed(seed); random.shuffle(pairs)`, as the paper's code draws it.
    Reference(u64),
}

/// The `modular` dataset plugin.
#[derive(Default)]
pub(crate) struct Modular;

/// The number of pairs and of training pairs, or why `p`, the pairs and `train_fraction` cannot
/// make a dataset (checked before anything runs, and again when building).
fn sizes(p: usize, all_pairs: bool, train_fraction: f64) -> Result<(usize, usize)> {
    if p < 2 {
        return Err(Error::param("p", format!("the modulus must be at least 2, got {p}")));
    }
    // One-hot inputs take 2p floats per pair; refuse sizes that cannot be meant (p = 1000 is
    // already a 4 GB dataset with all pairs).
    let n_pairs = if all_pairs { p.saturating_mul(p) } else { p.saturating_mul(p + 1) / 2 };
    if p > 1000 || n_pairs.saturating_mul(2 * p) > 1 << 30 {
        return Err(Error::param(
            "p",
            format!(
                "p = {p} gives {n_pairs} one-hot pairs of width 2p, more than this task is built for (at most 2^30 input values)"
            ),
        ));
    }
    let n_train = (train_fraction * n_pairs as f64) as usize;
    if n_train == 0 || n_train >= n_pairs {
        let empty = if n_train == 0 { "training" } else { "test" };
        return Err(Error::param(
            "train_fraction",
            format!(
                "{train_fraction} of {n_pairs} pairs leaves the {empty} split empty; use a fraction that keeps at least one pair on each side"
            ),
        ));
    }
    Ok((n_pairs, n_train))
}

/// Shape facts of the task mod `p`: two one-hot tokens in, `p` classes out.
fn info(p: usize) -> DatasetInfo {
    DatasetInfo {
        input_shape: vec![2, p],
        output_dim: p,
        tokens: Some(TokenInfo { vocab: p, n_ctx: 2 }),
    }
}

/// Builds the dataset: one-hot tokens `[n, 2, p]`, labels `op(a, b) mod p`.
pub fn modular_dataset(
    op: Operation,
    p: usize,
    all_pairs: bool,
    train_fraction: f64,
    draw: SplitDraw,
) -> Result<Dataset> {
    sizes(p, all_pairs, train_fraction)?;
    let mut pairs: Vec<(usize, usize)> =
        (0..p).flat_map(|a| (if all_pairs { 0 } else { a }..p).map(move |b| (a, b))).collect();
    match draw {
        SplitDraw::Seeded(seed) => pairs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed)),
        SplitDraw::Reference(seed) => super::python_random::shuffle(&mut pairs, seed),
    }
    let n_train = (train_fraction * pairs.len() as f64) as usize;
    let split = |ps: &[(usize, usize)]| {
        let mut x = vec![0.0f32; ps.len() * 2 * p];
        let labels = ps
            .iter()
            .enumerate()
            .map(|(r, &(a, b))| {
                x[r * 2 * p + a] = 1.0;
                x[r * 2 * p + p + b] = 1.0;
                op.apply(a as u64, b as u64, p as u64) as u32
            })
            .collect();
        Split {
            x: HostTensor::new(vec![ps.len(), 2, p], x),
            y: Targets::Classes { labels, n_classes: p },
        }
    };
    let name = OPS.iter().find(|(_, o)| *o == op).map_or("?", |(n, _)| n);
    Ok(Dataset {
        description: format!(
            "{name} mod {p}, {} train / {} test pairs",
            n_train,
            pairs.len() - n_train
        ),
        info: info(p),
        train: split(&pairs[..n_train]),
        test: split(&pairs[n_train..]),
    })
}

/// The `split` parameter; `seeded` when absent (it came after the others, and parameters built
/// by hand may lack it).
fn split(params: &Params) -> &str {
    params.str("split").unwrap_or("seeded")
}

impl DatasetPlugin for Modular {
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset> {
        let op_name = params.str("op")?;
        let op = Operation::parse(op_name)
            .ok_or_else(|| Error::param("op", format!("unknown operation `{op_name}`")))?;
        let p = usize::try_from(params.i64("p")?)
            .map_err(|_| Error::param("p", "the modulus must be at least 2"))?;
        self.check(params)?;
        let draw = match (split(params), params.i64("split_seed")?) {
            ("reference", s) => SplitDraw::Reference(s as u64),
            (_, -1) => SplitDraw::Seeded(ctx.seed),
            (_, s) => SplitDraw::Seeded(s as u64),
        };
        modular_dataset(op, p, params.str("pairs")? == "all", params.f64("train_fraction")?, draw)
    }

    fn check(&self, params: &Params) -> Result<()> {
        let p = usize::try_from(params.i64("p")?)
            .map_err(|_| Error::param("p", "the modulus must be at least 2"))?;
        if split(params) == "reference" && params.i64("split_seed")? == -1 {
            return Err(Error::param(
                "split_seed",
                "`split: reference` draws the split as the paper's code does with its seed: set `split_seed` to that seed (0, 1, 2, ...)",
            ));
        }
        sizes(p, params.str("pairs")? == "all", params.f64("train_fraction")?).map(|_| ())
    }

    /// The split is drawn with the stage seed only when `split_seed` is -1.
    fn uses_seed(&self, params: &Params) -> bool {
        params.i64("split_seed").map_or(true, |s| s == -1)
    }

    fn shape(&self, params: &Params) -> Option<DatasetShape> {
        let p = usize::try_from(params.i64("p").ok()?).ok()?;
        let all_pairs = params.str("pairs").ok()? == "all";
        let (pairs, train) = sizes(p, all_pairs, params.f64("train_fraction").ok()?).ok()?;
        Some(DatasetShape { info: info(p), train, test: pairs - train })
    }
}

register_plugin!(
    Dataset,
    "modular",
    "1.0.0",
    "Modular arithmetic op(a, b) mod p with one-hot tokens (the paper's main task)",
    PARAMS,
    Modular
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations written out again, in exact integer arithmetic with no intermediate `mod`.
    fn reference(op: &str, a: i128, b: i128) -> i128 {
        match op {
            "add" => a + b,
            "subtract" => a - b,
            "multiply" => a * b,
            "x2y2" => a * a + b * b,
            "x2xyy2" => a * a + a * b + b * b,
            "x2xyy2x" => a * a + a * b + b * b + a,
            "x3xy" => a * a * a + a * b,
            "x3xy2y" => a * a + a * b * b + b,
            "x2xyy2x2" => a * a + a * b + b * b + a * a,
            "x2xyy2y2" => a * a + a * b + b * b + b * b,
            "x22xyy2" => (a + b) * (a + b),
            "x22xyy2y" => (a + b) * (a + b) + 2 * b,
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_operation_matches_exact_arithmetic() {
        for p in [2u64, 7, 67, 97] {
            for (name, op) in OPS {
                for a in 0..p {
                    for b in 0..p {
                        let want =
                            reference(name, i128::from(a), i128::from(b)).rem_euclid(i128::from(p));
                        assert_eq!(i128::from(op.apply(a, b, p)), want, "{name}({a}, {b}) mod {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn splits_are_seeded_disjoint_and_cover_every_pair() {
        let d = modular_dataset(Operation::Add, 11, false, 0.4, SplitDraw::Seeded(5)).unwrap();
        assert_eq!(
            d,
            modular_dataset(Operation::Add, 11, false, 0.4, SplitDraw::Seeded(5)).unwrap()
        );
        assert_ne!(
            d.train,
            modular_dataset(Operation::Add, 11, false, 0.4, SplitDraw::Seeded(6)).unwrap().train
        );
        let pairs = |s: &Split| -> Vec<(usize, usize)> {
            (0..s.len())
                .map(|r| {
                    let row = &s.x.data[r * 22..(r + 1) * 22];
                    assert_eq!(row.iter().sum::<f32>(), 2.0, "exactly one token each");
                    (
                        row[..11].iter().position(|v| *v == 1.0).unwrap(),
                        row[11..].iter().position(|v| *v == 1.0).unwrap(),
                    )
                })
                .collect()
        };
        let mut all: Vec<(usize, usize)> =
            pairs(&d.train).into_iter().chain(pairs(&d.test)).collect();
        assert!(all.iter().all(|(a, b)| a <= b), "symmetric pairs have a <= b");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 66);
        assert_eq!(d.train.len(), 26); // int(0.4 * 66)
        assert_eq!(
            modular_dataset(Operation::Add, 67, true, 0.4, SplitDraw::Seeded(0))
                .unwrap()
                .train
                .len()
                + modular_dataset(Operation::Add, 67, true, 0.4, SplitDraw::Seeded(0))
                    .unwrap()
                    .test
                    .len(),
            4489
        );
    }

    #[test]
    fn symmetric_split_matches_the_reference_code_sizes() {
        let d = modular_dataset(Operation::Add, 67, false, 0.4, SplitDraw::Seeded(0)).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (911, 1367));
        assert_eq!(d.train.x.shape, vec![911, 2, 67]);
    }

    #[test]
    fn labels_follow_the_operation() {
        let d = modular_dataset(Operation::X2Y2, 7, true, 0.5, SplitDraw::Seeded(3)).unwrap();
        let Targets::Classes { labels, .. } = &d.train.y else { panic!() };
        for (r, &label) in labels.iter().enumerate() {
            let row = &d.train.x.data[r * 14..(r + 1) * 14];
            let a = row[..7].iter().position(|v| *v == 1.0).unwrap() as u64;
            let b = row[7..].iter().position(|v| *v == 1.0).unwrap() as u64;
            assert_eq!(u64::from(label), (a * a + b * b) % 7);
        }
        assert_eq!(d.train.len() + d.test.len(), 49);
        assert_eq!(Operation::Subtract.apply(2, 5, 7), 4);
        assert_eq!(Operation::X3XY.apply(3, 4, 5), (27 + 12) % 5);
    }

    #[test]
    fn bad_moduli_and_fractions_are_refused() {
        let err = modular_dataset(Operation::Add, 1, false, 0.4, SplitDraw::Seeded(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 2"), "{err}");
        let err = modular_dataset(Operation::Add, 100_000, false, 0.4, SplitDraw::Seeded(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("p = 100000"), "{err}");
        let err = modular_dataset(Operation::Add, 2, false, 0.2, SplitDraw::Seeded(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the training split empty"), "{err}");
        let ctx = StageContext::new("data", 0, ".");
        let p = Params::new()
            .with("op", "add")
            .with("p", -3)
            .with("pairs", "symmetric")
            .with("train_fraction", 0.4)
            .with("split_seed", -1)
            .with("split", "seeded");
        assert!(Modular.build(&p, &ctx).unwrap_err().to_string().contains("at least 2"));
        // The reference split needs the code's seed.
        let p = p.with("p", 7).with("split", "reference");
        let err = Modular.check(&p).unwrap_err().to_string();
        assert!(err.contains("set `split_seed` to that seed"), "{err}");
    }

    #[test]
    fn the_split_seed_defaults_to_the_stage_seed() {
        let params = |s: i64| {
            Params::new()
                .with("op", "multiply")
                .with("p", 13)
                .with("pairs", "all")
                .with("train_fraction", 0.5)
                .with("split_seed", s)
                .with("split", "seeded")
        };
        let ctx = StageContext::new("data", 42, ".");
        let d = Modular.build(&params(-1), &ctx).unwrap();
        assert_eq!(d, Modular.build(&params(42), &ctx).unwrap());
        assert_eq!(d.info.tokens, Some(TokenInfo { vocab: 13, n_ctx: 2 }));
        assert_eq!((d.train.len(), d.test.len()), (84, 85));
    }
}
