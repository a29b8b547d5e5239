//! Pruner tests on a tiny ReLU network: every score against a host reference in f64 (hand
//! backpropagation, itself checked by finite differences), and the mask invariants under
//! repeated pruning for every registered pruner.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use ticketlab_api::artifact::MaskArtifact;
use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_api::ir::PRUNE_PARAMS;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::plugin::{Params, PruneContext, PrunerPlugin, StageContext};
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, MaskSet, NamedTensors, ParamDef, Var,
};
use ticketlab_api::{Result, seed};
use ticketlab_tensor::pruning::{MaskRequest, dense_mask, make_mask};

use super::grasp::Grasp;
use super::magnitude::Magnitude;
use super::random::{Random, Shuffle};
use super::snip::Snip;
use super::synflow::Synflow;

const N_IN: usize = 3;
const HIDDEN: usize = 4;
const CLASSES: usize = 3;
const N: usize = 6;

/// `logits = relu(x A) B` with `A: [3, 4]`, `B: [4, 3]`, both prunable.
struct Tiny;

impl Architecture for Tiny {
    fn parameters(&self) -> Vec<ParamDef> {
        vec![
            ParamDef {
                name: "a".into(),
                shape: vec![N_IN, HIDDEN],
                init: Init::Normal { std: 0.8 },
                prunable: true,
            },
            ParamDef {
                name: "b".into(),
                shape: vec![HIDDEN, CLASSES],
                init: Init::Normal { std: 0.8 },
                prunable: true,
            },
        ]
    }
    fn forward(&self, g: &mut GraphBuilder, p: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
        let h = g.matmul(x, p["a"])?;
        let h = g.relu(h)?;
        g.matmul(h, p["b"])
    }
}

/// Weights, data and a dense mask; pre-activations are kept away from the ReLU kink so finite
/// differences are valid.
fn fixture(seed: u64) -> (NamedTensors, Dataset) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect() };
    let params: NamedTensors = [
        ("a".to_string(), HostTensor::new(vec![N_IN, HIDDEN], draw(N_IN * HIDDEN))),
        ("b".to_string(), HostTensor::new(vec![HIDDEN, CLASSES], draw(HIDDEN * CLASSES))),
    ]
    .into();
    let x = HostTensor::new(vec![N, N_IN], draw(N * N_IN));
    let labels = (0..N).map(|i| (i % CLASSES) as u32).collect();
    let split = Split { x, y: Targets::Classes { labels, n_classes: CLASSES } };
    let data = Dataset {
        description: "tiny".into(),
        info: DatasetInfo { input_shape: vec![N_IN], output_dim: CLASSES, tokens: None },
        train: split.clone(),
        test: split,
    };
    (params, data)
}

// ---- host reference in f64 ------------------------------------------------------------

/// Flat f64 copies of A, B and x.
struct Host {
    a: Vec<f64>,
    b: Vec<f64>,
    x: Vec<f64>,
    y: Vec<usize>,
}

impl Host {
    fn new(p: &NamedTensors, mask: &MaskSet, d: &Dataset) -> Self {
        let m = |n: &str| -> Vec<f64> {
            p[n].data.iter().zip(&mask[n].data).map(|(w, k)| f64::from(w * k)).collect()
        };
        let Targets::Classes { labels, .. } = &d.train.y else { unreachable!() };
        Self {
            a: m("a"),
            b: m("b"),
            x: d.train.x.data.iter().map(|v| f64::from(*v)).collect(),
            y: labels.iter().map(|l| *l as usize).collect(),
        }
    }

    fn pre(&self, a: &[f64]) -> Vec<f64> {
        let mut h = vec![0.0; N * HIDDEN];
        for i in 0..N {
            for j in 0..HIDDEN {
                h[i * HIDDEN + j] =
                    (0..N_IN).map(|k| self.x[i * N_IN + k] * a[k * HIDDEN + j]).sum();
            }
        }
        h
    }

    fn outputs(&self, a: &[f64], b: &[f64]) -> Vec<f64> {
        let h: Vec<f64> = self.pre(a).into_iter().map(|v| v.max(0.0)).collect();
        let mut z = vec![0.0; N * CLASSES];
        for i in 0..N {
            for c in 0..CLASSES {
                z[i * CLASSES + c] =
                    (0..HIDDEN).map(|j| h[i * HIDDEN + j] * b[j * CLASSES + c]).sum();
            }
        }
        z
    }

    /// Mean cross-entropy of `outputs / t`.
    fn loss(&self, a: &[f64], b: &[f64], t: f64) -> f64 {
        let z = self.outputs(a, b);
        (0..N)
            .map(|i| {
                let row: Vec<f64> =
                    z[i * CLASSES..(i + 1) * CLASSES].iter().map(|v| v / t).collect();
                let m = row.iter().fold(f64::NEG_INFINITY, |p, q| p.max(*q));
                m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[self.y[i]]
            })
            .sum::<f64>()
            / N as f64
    }

    /// Backpropagation of `dz` (the gradient at the outputs) to (dA, dB).
    fn backprop(&self, a: &[f64], b: &[f64], dz: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let pre = self.pre(a);
        let (mut da, mut db) = (vec![0.0; N_IN * HIDDEN], vec![0.0; HIDDEN * CLASSES]);
        for i in 0..N {
            for j in 0..HIDDEN {
                let h = pre[i * HIDDEN + j];
                let mut dh = 0.0;
                for c in 0..CLASSES {
                    db[j * CLASSES + c] += h.max(0.0) * dz[i * CLASSES + c];
                    dh += dz[i * CLASSES + c] * b[j * CLASSES + c];
                }
                if h > 0.0 {
                    for k in 0..N_IN {
                        da[k * HIDDEN + j] += self.x[i * N_IN + k] * dh;
                    }
                }
            }
        }
        (da, db)
    }

    /// Gradient of [`Host::loss`].
    fn grad(&self, a: &[f64], b: &[f64], t: f64) -> (Vec<f64>, Vec<f64>) {
        let z = self.outputs(a, b);
        let mut dz = vec![0.0; N * CLASSES];
        for i in 0..N {
            let row: Vec<f64> = z[i * CLASSES..(i + 1) * CLASSES].iter().map(|v| v / t).collect();
            let m = row.iter().fold(f64::NEG_INFINITY, |p, q| p.max(*q));
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for c in 0..CLASSES {
                let p = (row[c] - m).exp() / s;
                dz[i * CLASSES + c] = (p - f64::from(u8::from(c == self.y[i]))) / (t * N as f64);
            }
        }
        self.backprop(a, b, &dz)
    }
}

fn axpy(x: &[f64], s: f64, v: &[f64]) -> Vec<f64> {
    x.iter().zip(v).map(|(a, b)| a + s * b).collect()
}

/// Asserts `got` (f32 engine) matches `want` (f64 host) to `tol` relative to `want`'s largest entry.
fn close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= tol * scale,
            "{what}[{i}]: engine {g} vs reference {w} (scale {scale})"
        );
    }
}

fn sctx(seed: u64) -> StageContext {
    StageContext::new("prune", seed, ".")
}

fn pctx<'a>(
    p: &'a NamedTensors,
    m: &'a MaskSet,
    d: &'a Dataset,
    sc: &'a StageContext,
) -> PruneContext<'a> {
    PruneContext {
        arch: &Tiny,
        params: p,
        mask: m,
        reference_mask: None,
        data: Some(d),
        ctx: sc,
        round: (0, 1),
    }
}

/// A mask that prunes a few weights of each layer, to check masked scoring.
fn partial_mask() -> MaskSet {
    let mut m = dense_mask(&Tiny);
    m.get_mut("a").unwrap().data[1] = 0.0;
    m.get_mut("b").unwrap().data[4] = 0.0;
    m
}

fn pruner_params() -> Params {
    Params::new()
        .with("batch", 0)
        .with("temperature", 1.0)
        .with("input", "batch")
        .with("rounds", 1)
        .with("precision", "f32")
        .with("preserve", "layer")
}

#[test]
fn host_reference_gradient_matches_finite_differences() {
    let (p, d) = fixture(1);
    let host = Host::new(&p, &dense_mask(&Tiny), &d);
    assert!(
        host.pre(&host.a).iter().all(|v| v.abs() > 1e-3),
        "fixture pre-activations must avoid the ReLU kink"
    );
    let (ga, gb) = host.grad(&host.a, &host.b, 3.0);
    let eps = 1e-6;
    for i in 0..host.a.len() {
        let mut e = vec![0.0; host.a.len()];
        e[i] = 1.0;
        let fd = (host.loss(&axpy(&host.a, eps, &e), &host.b, 3.0)
            - host.loss(&axpy(&host.a, -eps, &e), &host.b, 3.0))
            / (2.0 * eps);
        assert!((fd - ga[i]).abs() < 1e-7, "dA[{i}]: {fd} vs {}", ga[i]);
    }
    for i in 0..host.b.len() {
        let mut e = vec![0.0; host.b.len()];
        e[i] = 1.0;
        let fd = (host.loss(&host.a, &axpy(&host.b, eps, &e), 3.0)
            - host.loss(&host.a, &axpy(&host.b, -eps, &e), 3.0))
            / (2.0 * eps);
        assert!((fd - gb[i]).abs() < 1e-7, "dB[{i}]: {fd} vs {}", gb[i]);
    }
}

#[test]
fn magnitude_is_the_absolute_weight() {
    let (p, d) = fixture(1);
    let m = dense_mask(&Tiny);
    let sc = sctx(0);
    let s = Magnitude.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap().scores;
    for name in ["a", "b"] {
        assert_eq!(s[name].data, p[name].data.iter().map(|v| v.abs()).collect::<Vec<_>>());
    }
}

#[test]
fn snip_is_the_normalised_abs_gradient_times_weight() {
    let (p, d) = fixture(2);
    let m = partial_mask();
    let host = Host::new(&p, &m, &d);
    assert!(host.pre(&host.a).iter().all(|v| v.abs() > 1e-3));
    let (ga, gb) = host.grad(&host.a, &host.b, 1.0);
    let mut ra: Vec<f64> = ga.iter().zip(&host.a).map(|(g, w)| (g * w).abs()).collect();
    let mut rb: Vec<f64> = gb.iter().zip(&host.b).map(|(g, w)| (g * w).abs()).collect();
    let total: f64 = ra.iter().chain(&rb).sum();
    ra.iter_mut().chain(rb.iter_mut()).for_each(|v| *v /= total);
    let sc = sctx(0);
    let s = Snip.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap().scores;
    close("snip a", &s["a"].data, &ra, 1e-4);
    close("snip b", &s["b"].data, &rb, 1e-4);
    assert_eq!(s["a"].data[1], 0.0, "a pruned weight has no sensitivity");
    let sum: f32 = s.values().flat_map(|t| t.data.iter()).sum();
    assert!((sum - 1.0).abs() < 1e-5);
}

#[test]
fn grasp_is_weight_times_hessian_gradient_product() {
    let (p, d) = fixture(3);
    let m = partial_mask();
    let host = Host::new(&p, &m, &d);
    assert!(host.pre(&host.a).iter().all(|v| v.abs() > 1e-3));
    for t in [1.0, 200.0] {
        let (ga, gb) = host.grad(&host.a, &host.b, t);
        // Hg by central differences of the exact gradient along g (the ReLU pattern is locally fixed).
        let eps = 1e-4 * t;
        let (pa, pb) = host.grad(&axpy(&host.a, eps, &ga), &axpy(&host.b, eps, &gb), t);
        let (na, nb) = host.grad(&axpy(&host.a, -eps, &ga), &axpy(&host.b, -eps, &gb), t);
        let hga: Vec<f64> = pa.iter().zip(&na).map(|(x, y)| (x - y) / (2.0 * eps)).collect();
        let hgb: Vec<f64> = pb.iter().zip(&nb).map(|(x, y)| (x - y) / (2.0 * eps)).collect();
        let mut ra: Vec<f64> = hga.iter().zip(&host.a).map(|(h, w)| h * w).collect();
        let mut rb: Vec<f64> = hgb.iter().zip(&host.b).map(|(h, w)| h * w).collect();
        let total: f64 = ra.iter().chain(&rb).sum::<f64>().abs() + 1e-10;
        ra.iter_mut().chain(rb.iter_mut()).for_each(|v| *v /= total);
        let sc = sctx(0);
        let s = Grasp
            .score(&pruner_params().with("temperature", t), &pctx(&p, &m, &d, &sc))
            .unwrap()
            .scores;
        close(&format!("grasp a (T = {t})"), &s["a"].data, &ra, 2e-3);
        close(&format!("grasp b (T = {t})"), &s["b"].data, &rb, 2e-3);
        // Signed: GraSP scores are not absolute values.
        assert!(
            s.values().flat_map(|v| v.data.iter()).any(|v| *v < 0.0)
                && s.values().flat_map(|v| v.data.iter()).any(|v| *v > 0.0)
        );
    }
}

#[test]
fn synflow_is_the_synaptic_flow_of_the_absolute_network() {
    let (p, d) = fixture(4);
    let m = partial_mask();
    let host = Host::new(&p, &m, &d);
    let abs = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x.abs()).collect() };
    for input in ["batch", "ones"] {
        // R = sum of outputs of |A|, |B| on the input; dR/dz = 1.
        let mut h = Host { a: abs(&host.a), b: abs(&host.b), x: host.x.clone(), y: host.y.clone() };
        let rows = if input == "ones" { 1 } else { N };
        if input == "ones" {
            h.x = vec![1.0; N * N_IN];
        }
        let mut dz = vec![0.0; N * CLASSES];
        dz[..rows * CLASSES].iter_mut().for_each(|v| *v = 1.0);
        let (ga, gb) = h.backprop(&h.a, &h.b, &dz);
        let ra: Vec<f64> = ga.iter().zip(&h.a).map(|(g, w)| (g * w).abs()).collect();
        let rb: Vec<f64> = gb.iter().zip(&h.b).map(|(g, w)| (g * w).abs()).collect();
        let sc = sctx(0);
        let s = Synflow
            .score(&pruner_params().with("input", input), &pctx(&p, &m, &d, &sc))
            .unwrap()
            .scores;
        close(&format!("synflow a ({input})"), &s["a"].data, &ra, 1e-5);
        close(&format!("synflow b ({input})"), &s["b"].data, &rb, 1e-5);
        assert_eq!((s["a"].data[1], s["b"].data[4]), (0.0, 0.0), "masked weights score exactly 0");
        // Rescaling each tensor by its maximum multiplies every score by one constant.
        let r = Synflow
            .score(
                &pruner_params().with("input", input).with("precision", "f32_rescaled"),
                &pctx(&p, &m, &d, &sc),
            )
            .unwrap()
            .scores;
        let ratio = f64::from(s["a"].data[0]) / f64::from(r["a"].data[0]);
        for name in ["a", "b"] {
            for (x, y) in s[name].data.iter().zip(&r[name].data) {
                assert!(
                    (f64::from(*x) - ratio * f64::from(*y)).abs()
                        <= 1e-4 * f64::from(*x).abs().max(1e-6),
                    "{name}: {x} vs {ratio} * {y}"
                );
            }
        }
    }
}

#[test]
fn synflow_finite_differences_of_r() {
    // dR/dθ of the engine against central differences of R itself (no hand backpropagation).
    let (p, d) = fixture(5);
    let m = dense_mask(&Tiny);
    let host = Host::new(&p, &m, &d);
    let abs = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x.abs()).collect() };
    let (a, b) = (abs(&host.a), abs(&host.b));
    let r = |a: &[f64], b: &[f64]| host.outputs(a, b).iter().sum::<f64>();
    let sc = sctx(0);
    let s = Synflow.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap().scores;
    let eps = 1e-6;
    for i in 0..a.len() {
        let mut e = vec![0.0; a.len()];
        e[i] = 1.0;
        let fd = (r(&axpy(&a, eps, &e), &b) - r(&axpy(&a, -eps, &e), &b)) / (2.0 * eps);
        assert!((f64::from(s["a"].data[i]) - (fd * a[i]).abs()).abs() < 1e-4, "a[{i}]");
    }
}

#[test]
fn random_is_seeded_per_stage_and_shuffle_keeps_reference_counts() {
    let (p, d) = fixture(1);
    let m = dense_mask(&Tiny);
    let (s7, s8) = (sctx(7), sctx(8));
    let a = Random.score(&pruner_params(), &pctx(&p, &m, &d, &s7)).unwrap().scores;
    assert_eq!(a, Random.score(&pruner_params(), &pctx(&p, &m, &d, &s7)).unwrap().scores);
    assert_ne!(a, Random.score(&pruner_params(), &pctx(&p, &m, &d, &s8)).unwrap().scores);
    let err = Shuffle.score(&pruner_params(), &pctx(&p, &m, &d, &s7)).unwrap_err().to_string();
    assert!(err.contains("`mask` input"), "{err}");
    let reference = partial_mask();
    let mut c = pctx(&p, &m, &d, &s7);
    c.reference_mask = Some(&reference);
    let s = Shuffle.score(&pruner_params(), &c).unwrap();
    assert_eq!(
        s.keep_per_layer.unwrap(),
        BTreeMap::from([("a".to_string(), 11), ("b".to_string(), 11)])
    );
    let foreign: MaskSet = [("c".to_string(), HostTensor::full(vec![2], 1.0))].into();
    c.reference_mask = Some(&foreign);
    assert!(Shuffle.score(&pruner_params(), &c).unwrap_err().to_string().contains("`c`"));
}

#[test]
fn random_scores_are_box_muller_draws_of_each_layer_stream() {
    // Written out in full: the numbers the pruner drew before it used core's shared sampler.
    let (p, d) = fixture(1);
    let m = dense_mask(&Tiny);
    let sc = sctx(7);
    let scores = Random.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap().scores;
    for (name, t) in &scores {
        let stream = seed::splitmix64(7 ^ seed::splitmix64(seed::fnv1a(name)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(stream);
        let want: Vec<f32> = (0..t.len())
            .map(|_| {
                let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.r#gen();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
            })
            .collect();
        assert_eq!(t.data, want, "{name}");
    }
}

#[test]
fn synflow_refuses_an_empty_training_split() {
    let (p, mut d) = fixture(1);
    d.train = d.train.select(&[]);
    let m = dense_mask(&Tiny);
    let sc = sctx(0);
    for input in ["ones", "batch"] {
        let err = Synflow
            .score(&pruner_params().with("input", input), &pctx(&p, &m, &d, &sc))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the training split is empty"), "{input}: {err}");
    }
}

#[test]
fn regression_tasks_score_with_mse_or_are_refused() {
    let (p, mut d) = fixture(1);
    d.train.y =
        Targets::Regression { values: HostTensor::new(vec![N, CLASSES], vec![0.5; N * CLASSES]) };
    let m = dense_mask(&Tiny);
    let sc = sctx(0);
    let s = Snip.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap().scores;
    assert!(s.values().flat_map(|t| t.data.iter()).all(|v| v.is_finite()));
    let err = Grasp.score(&pruner_params(), &pctx(&p, &m, &d, &sc)).unwrap_err().to_string();
    assert!(err.contains("classification"), "{err}");
}

// ---- the invariants through the core, for every registered pruner ----------------------

/// Stage parameters as the checker would fill them: the core's defaults, then the plugin's.
fn stage_params(registry: &Registry, name: &str) -> Params {
    let entry = registry.get(ticketlab_api::plugin::PluginKind::Pruner, name).expect("registered");
    Params::new().with_defaults(PRUNE_PARAMS).with_defaults(&entry.params)
}

fn prune(
    pruner: &dyn PrunerPlugin,
    params: &Params,
    weights: &NamedTensors,
    current: &MaskSet,
    reference: Option<&MaskSet>,
    data: &Dataset,
) -> MaskArtifact {
    let ctx = sctx(11);
    let input = PruneContext {
        arch: &Tiny,
        params: weights,
        mask: current,
        reference_mask: reference,
        data: Some(data),
        ctx: &ctx,
        round: (0, 1),
    };
    let req = MaskRequest { pruner_id: "pruner/test@1", params, input, scored_at: None };
    make_mask(pruner, &req).unwrap()
}

/// A pruner says whether it scores with data: one that does not (magnitude, random, shuffle)
/// makes the same mask without a dataset, so a prune stage using it need not connect one; one
/// that does (SNIP, GraSP, SynFlow) refuses to score without, naming the `data` input.
#[test]
fn only_the_pruners_that_score_with_data_need_it() {
    let registry = Registry::builtin().unwrap();
    let (weights, data) = fixture(6);
    let sc = sctx(3);
    let dense = dense_mask(&Tiny);
    let magnitude = registry.pruner("magnitude").unwrap();
    let half = stage_params(&registry, "magnitude").with("rate", 0.5);
    let reference = prune(magnitude.as_ref(), &half, &weights, &dense, None, &data).masks;
    for name in ["magnitude", "random", "shuffle", "snip", "grasp", "synflow"] {
        let pruner = registry.pruner(name).unwrap();
        let params = stage_params(&registry, name).with("rate", 0.5);
        let needs = pruner.needs_data(&params);
        assert_eq!(needs, matches!(name, "snip" | "grasp" | "synflow"), "{name}");
        let with =
            PruneContext { reference_mask: Some(&reference), ..pctx(&weights, &dense, &data, &sc) };
        let without = PruneContext { data: None, ..with };
        let request = |input| MaskRequest {
            pruner_id: "pruner/test@1",
            params: &params,
            input,
            scored_at: None,
        };
        match make_mask(pruner.as_ref(), &request(without)) {
            Ok(mask) => {
                assert!(!needs, "{name} scored without the data it needs");
                let full = make_mask(pruner.as_ref(), &request(with)).unwrap();
                assert_eq!(mask.masks, full.masks, "{name}: the data changes nothing");
            }
            Err(e) => {
                assert!(needs, "{name}: {e}");
                assert!(e.to_string().contains("`data` input"), "{name}: {e}");
            }
        }
    }
}

#[test]
fn every_pruner_keeps_the_invariants_under_repeated_pruning() {
    let registry = Registry::builtin().unwrap();
    let (weights, data) = fixture(6);
    let total = 24;
    let reference = prune(
        registry.pruner("magnitude").unwrap().as_ref(),
        &stage_params(&registry, "magnitude").with("rate", 0.5),
        &weights,
        &dense_mask(&Tiny),
        None,
        &data,
    )
    .masks;
    for name in ["magnitude", "random", "shuffle", "snip", "grasp", "synflow"] {
        let pruner = registry.pruner(name).unwrap();
        let mut current = dense_mask(&Tiny);
        for (level, rate) in [0.25, 0.5, 0.75].into_iter().enumerate() {
            let mut params = stage_params(&registry, name).with("rate", rate);
            if name == "synflow" {
                params = params.with("rounds", 4);
            }
            let out = prune(pruner.as_ref(), &params, &weights, &current, Some(&reference), &data);
            let again =
                prune(pruner.as_ref(), &params, &weights, &current, Some(&reference), &data);
            assert_eq!(out.masks, again.masks, "{name}: deterministic");
            for (layer, m) in &out.masks {
                assert!(m.data.iter().all(|v| *v == 0.0 || *v == 1.0), "{name}: binary mask");
                for (n, o) in m.data.iter().zip(&current[layer].data) {
                    assert!(n <= o, "{name} level {level}: `{layer}` revived a weight");
                }
                assert_eq!(
                    out.report.layers[layer].kept,
                    m.data.iter().filter(|v| **v == 1.0).count()
                );
            }
            if name == "shuffle" {
                // The reference's per-layer counts, whatever the rate (from a dense model only).
                if level == 0 {
                    for (layer, m) in &out.masks {
                        assert_eq!(
                            out.report.layers[layer].kept,
                            reference[layer].data.iter().filter(|v| **v == 1.0).count()
                        );
                        assert_eq!(m.len(), reference[layer].len());
                    }
                }
            } else {
                let want = ((1.0 - rate) * total as f64).round() as usize;
                assert_eq!(out.report.kept, want, "{name} at rate {rate}: exact k");
                assert!(
                    out.warnings.iter().all(|w| !w.contains("kept only")),
                    "{name}: {:?}",
                    out.warnings
                );
            }
            current = out.masks;
        }
    }
}

#[test]
fn layerwise_scope_holds_for_data_dependent_pruners() {
    let registry = Registry::builtin().unwrap();
    let (weights, data) = fixture(7);
    for name in ["snip", "grasp", "synflow", "random", "magnitude"] {
        let params = stage_params(&registry, name).with("rate", 0.5).with("scope", "layerwise");
        let out = prune(
            registry.pruner(name).unwrap().as_ref(),
            &params,
            &weights,
            &dense_mask(&Tiny),
            None,
            &data,
        );
        assert_eq!((out.report.layers["a"].kept, out.report.layers["b"].kept), (6, 6), "{name}");
    }
}

/// `preserve: rows` keeps every row's count of the reference mask, at random positions, and a
/// different seed moves them.
#[test]
fn shuffle_can_keep_every_rows_count() {
    let (p, d) = fixture(1);
    let m = dense_mask(&Tiny);
    let reference = partial_mask();
    let rows = pruner_params().with("preserve", "rows");
    let run = |seed| {
        let sc = sctx(seed);
        let mut c = pctx(&p, &m, &d, &sc);
        c.reference_mask = Some(&reference);
        Shuffle.score(&rows, &c).unwrap()
    };
    let (a, b) = (run(7), run(8));
    for (name, r) in &reference {
        let width = r.len() / r.shape[0];
        let picked = &a.scores[name].data;
        assert!(picked.iter().all(|v| *v == 0.0 || *v == 1.0));
        for (row_ref, row) in r.data.chunks(width).zip(picked.chunks(width)) {
            let count = |v: &[f32]| v.iter().filter(|x| **x != 0.0).count();
            assert_eq!(count(row_ref), count(row), "{name}");
        }
    }
    assert_ne!(a.scores, b.scores);
}
