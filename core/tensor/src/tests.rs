//! Tests of the tensor backend: gradients of every primitive op and view against central
//! finite differences of f64 host references, double backward, kernel passes against
//! luminal's uncompiled reference, optimizers and masks.

use std::collections::BTreeMap;

use luminal::graph::NodeIndex;
use luminal::tensor::Tensor;
use rand::{Rng, SeedableRng};

use super::*;
use ticketlab_api::data::{Split, Targets};
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, MaskSet, NamedTensors, ParamDef, Var, init_params,
};

pub(super) fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub(super) fn random(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = rng(seed);
    (0..shape.iter().product::<usize>()).map(|_| r.gen_range(lo..hi)).collect()
}

/// The device the compiled side of these tests runs on, as `TICKETLAB_BACKEND` names it
/// ([`kernels::requested_device`]), so that one test binary checks the gradients of either
/// backend against the same references.
fn device() -> Device {
    kernels::requested_device().unwrap_or_else(|why| panic!("{why}"))
}

/// Evaluates `build` (a scalar function of the inputs) and its gradients, either through the
/// uncompiled luminal graph or compiled with the kernels of [`device`].
fn run_graph(
    build: &dyn Fn(&mut GraphBuilder, &[Var]) -> Var,
    inputs: &[(Vec<usize>, Vec<f32>)],
    compiled: bool,
) -> (f32, Vec<Vec<f32>>) {
    let mut g = GraphBuilder::new();
    let leaves: Vec<Var> =
        inputs.iter().enumerate().map(|(i, (s, _))| g.input(&format!("in{i}"), s)).collect();
    let out = build(&mut g, &leaves);
    let grads = autograd::backward(&mut g, out, &leaves).unwrap();
    let mut ids: Vec<NodeIndex> = vec![g.contiguous_if_needed(out).node];
    for gr in grads {
        let gr = g.contiguous_if_needed(gr);
        ids.push(gr.node);
    }
    for &id in &ids {
        g.cx.no_delete.insert(id);
    }
    if compiled {
        kernels::compile(&mut g.cx, &mut ids, None, device());
    }
    for (leaf, (_, data)) in leaves.iter().zip(inputs) {
        g.cx.set_tensor(leaf.node, 0, Tensor::new(data.clone()));
        g.cx.no_delete.insert(leaf.node);
    }
    g.cx.execute();
    let read = |id: NodeIndex| {
        g.cx.get_tensor_ref(id, 0)
            .unwrap()
            .data
            .as_any()
            .downcast_ref::<Vec<f32>>()
            .unwrap()
            .clone()
    };
    (read(ids[0])[0], ids[1..].iter().map(|&id| read(id)).collect())
}

/// Checks autograd (compiled and uncompiled) against central differences of `reference`.
fn check_gradients(
    name: &str,
    build: &dyn Fn(&mut GraphBuilder, &[Var]) -> Var,
    reference: &dyn Fn(&[Vec<f64>]) -> f64,
    inputs: &[(Vec<usize>, Vec<f32>)],
    tol: f64,
) {
    let x64: Vec<Vec<f64>> =
        inputs.iter().map(|(_, d)| d.iter().map(|&v| f64::from(v)).collect()).collect();
    let value = reference(&x64);
    for compiled in [false, true] {
        let (out, grads) = run_graph(build, inputs, compiled);
        assert!(
            (f64::from(out) - value).abs() <= tol * (1.0 + value.abs()),
            "{name} (compiled={compiled}): value {out} vs reference {value}"
        );
        for (i, grad) in grads.iter().enumerate() {
            for j in 0..grad.len() {
                let eps = 1e-6;
                let mut plus = x64.clone();
                plus[i][j] += eps;
                let mut minus = x64.clone();
                minus[i][j] -= eps;
                let fd = (reference(&plus) - reference(&minus)) / (2.0 * eps);
                let got = f64::from(grad[j]);
                assert!(
                    (got - fd).abs() <= tol * (1.0 + fd.abs()),
                    "{name} (compiled={compiled}): d/d in{i}[{j}] = {got}, finite difference {fd}"
                );
            }
        }
    }
}

/// A fixed random weighting so every output element matters: sum(w * y).
pub(super) fn weighted_sum(g: &mut GraphBuilder, y: Var, seed: u64) -> Var {
    let shape = y.shape();
    let w = g.input("weights", &shape);
    g.cx.set_tensor(w.node, 0, Tensor::new(random(&shape, seed, -1.0, 1.0)));
    g.cx.no_delete.insert(w.node);
    let p = g.mul(y, w).unwrap();
    g.sum_all(p).unwrap()
}

fn weights64(n: usize, seed: u64) -> Vec<f64> {
    random(&[n], seed, -1.0, 1.0).into_iter().map(f64::from).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

macro_rules! unary_case {
    ($test:ident, $method:ident, $f:expr, $lo:expr, $hi:expr) => {
        #[test]
        fn $test() {
            let shape = vec![2, 3];
            let inputs = vec![(shape.clone(), random(&shape, 1, $lo, $hi))];
            let w = weights64(6, 9);
            check_gradients(
                stringify!($method),
                &|g, x| {
                    let y = g.$method(x[0]);
                    weighted_sum(g, y, 9)
                },
                &|x| dot(&x[0].iter().map(|&v| $f(v)).collect::<Vec<f64>>(), &w),
                &inputs,
                1e-4,
            );
        }
    };
}

unary_case!(grad_log2, log2, |v: f64| v.log2(), 0.5, 2.0);
unary_case!(grad_exp2, exp2, |v: f64| v.exp2(), -1.0, 1.0);
unary_case!(grad_sin, sin, |v: f64| v.sin(), -2.0, 2.0);
unary_case!(grad_sqrt, sqrt, |v: f64| v.sqrt(), 0.5, 2.0);
unary_case!(grad_recip, recip, |v: f64| 1.0 / v, 0.5, 2.0);

/// tanh and GELU (tanh approximation) against their formulas in f64, with gradients, on
/// values where the clamp is inactive and where it holds tanh at ±1.
#[test]
fn grad_tanh_and_gelu() {
    let shape = vec![2, 4];
    let x = vec![-20.0, -3.0, -0.7, -0.1, 0.0, 0.4, 2.5, 18.0];
    let w = weights64(8, 21);
    let gelu64 = |v: f64| {
        0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
    };
    check_gradients(
        "tanh",
        &|g, x| {
            let y = g.tanh(x[0]).unwrap();
            weighted_sum(g, y, 21)
        },
        &|x| dot(&x[0].iter().map(|v| v.tanh()).collect::<Vec<_>>(), &w),
        &[(shape.clone(), x.clone())],
        1e-4,
    );
    check_gradients(
        "gelu",
        &|g, x| {
            let y = g.gelu(x[0]).unwrap();
            weighted_sum(g, y, 21)
        },
        &|x| dot(&x[0].iter().map(|&v| gelu64(v)).collect::<Vec<_>>(), &w),
        &[(shape, x)],
        1e-4,
    );
}

#[test]
fn grad_add_and_mul() {
    let s = vec![3, 2];
    let inputs = vec![(s.clone(), random(&s, 2, -1.0, 1.0)), (s.clone(), random(&s, 3, -1.0, 1.0))];
    let w = weights64(6, 4);
    check_gradients(
        "add*mul",
        &|g, x| {
            let a = g.add(x[0], x[1]).unwrap();
            let m = g.mul(a, x[0]).unwrap();
            weighted_sum(g, m, 4)
        },
        &|x| dot(&x[0].iter().zip(&x[1]).map(|(a, b)| (a + b) * a).collect::<Vec<_>>(), &w),
        &inputs,
        1e-4,
    );
}

#[test]
fn grad_mod() {
    // Quotients a / b stay clear of integers, where a % b jumps.
    let s = vec![2, 3];
    let a = vec![2.3, 3.7, 5.1, 0.4, 1.6, -4.4];
    let b = vec![1.1, 1.5, 2.0, 0.9, 0.7, 1.3];
    let w = weights64(6, 5);
    check_gradients(
        "mod",
        &|g, x| {
            let m = g.modulo(x[0], x[1]).unwrap();
            weighted_sum(g, m, 5)
        },
        &|x| dot(&x[0].iter().zip(&x[1]).map(|(a, b)| a % b).collect::<Vec<_>>(), &w),
        &[(s.clone(), a), (s, b)],
        1e-4,
    );
}

#[test]
fn grad_sum_and_max_reduce_each_axis() {
    let s = vec![2, 3, 4];
    let inputs = vec![(s.clone(), random(&s, 5, -1.0, 1.0))];
    for (axis, &len) in s.iter().enumerate() {
        for max in [false, true] {
            let out_n = 24 / len;
            let w = weights64(out_n, 6);
            let reference = |x: &[Vec<f64>]| {
                let mut out = vec![if max { f64::NEG_INFINITY } else { 0.0 }; out_n];
                for i in 0..2 {
                    for j in 0..3 {
                        for k in 0..4 {
                            let v = x[0][i * 12 + j * 4 + k];
                            let idx = match axis {
                                0 => j * 4 + k,
                                1 => i * 4 + k,
                                _ => i * 3 + j,
                            };
                            out[idx] = if max { out[idx].max(v) } else { out[idx] + v };
                        }
                    }
                }
                dot(&out, &w)
            };
            check_gradients(
                &format!("reduce axis {axis} max={max}"),
                &|g, x| {
                    let r = if max {
                        g.max_reduce(x[0], axis).unwrap()
                    } else {
                        g.sum_reduce(x[0], axis).unwrap()
                    };
                    weighted_sum(g, r, 6)
                },
                &reference,
                &inputs,
                1e-4,
            );
        }
    }
}

#[test]
fn grad_views_permute_expand_slice_pad_reshape() {
    let s = vec![2, 3];
    let inputs = vec![(s.clone(), random(&s, 7, -1.0, 1.0))];
    // y = reshape(pad(slice(permute(x) expanded), ...)): exercise every view kind at once.
    let w = weights64(4 * 2 * 2, 8);
    let reference = |x: &[Vec<f64>]| {
        // permute -> [3, 2]; expand axis 0 by 2 -> [2, 3, 2]; slice axis 1 to 1..3 -> [2, 2, 2];
        // pad axis 1 with (1, 1) -> [2, 4, 2]; reshape -> [4, 2, 2].
        let mut out = Vec::new();
        for _e in 0..2 {
            for r in 0..4 {
                for c in 0..2 {
                    out.push(if r == 0 || r == 3 { 0.0 } else { x[0][c * 3 + r] });
                }
            }
        }
        dot(&out, &w)
    };
    check_gradients(
        "views",
        &|g, x| {
            let p = g.permute(x[0], &[1, 0]).unwrap();
            let e = g.expand(p, 0, 2).unwrap();
            let sl = g.slice(e, 1, 1, 3).unwrap();
            let pd = g.pad(sl, 1, 1, 1).unwrap();
            let r = g.reshape(pd, &[4, 2, 2]).unwrap();
            weighted_sum(g, r, 8)
        },
        &reference,
        &inputs,
        1e-4,
    );
}

/// One position of a sequence, as the transformer's unembedding takes the last one: a slice of
/// length 1 that starts past 0, then a reshape (a copy) and arithmetic on it.
#[test]
fn grad_one_wide_slice_at_an_offset() {
    let s = vec![2, 3, 4];
    let inputs = vec![(s.clone(), random(&s, 11, -1.0, 1.0))];
    let w = weights64(2 * 4, 12);
    let reference = |x: &[Vec<f64>]| {
        let picked: Vec<f64> = (0..2)
            .flat_map(|b| (0..4).map(move |d| (b, d)))
            .map(|(b, d)| x[0][b * 12 + 2 * 4 + d] * 3.0)
            .collect();
        dot(&picked, &w)
    };
    check_gradients(
        "slice 2..3",
        &|g, x| {
            let last = g.slice(x[0], 1, 2, 3).unwrap();
            let flat = g.reshape(last, &[2, 4]).unwrap();
            let y = g.scale(flat, 3.0).unwrap();
            weighted_sum(g, y, 12)
        },
        &reference,
        &inputs,
        1e-4,
    );
}

fn matmul64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
        }
    }
    c
}

#[test]
fn grad_matmul_relu_and_transposed_weights() {
    // y = relu(x @ W1^T) @ W2, W1 stored [h, in] as in the paper's code.
    let (b, i, h, o) = (3, 4, 5, 2);
    let inputs = vec![
        (vec![b, i], random(&[b, i], 10, -1.0, 1.0)),
        (vec![h, i], random(&[h, i], 11, -1.0, 1.0)),
        (vec![h, o], random(&[h, o], 12, -1.0, 1.0)),
    ];
    let w = weights64(b * o, 13);
    let reference = |x: &[Vec<f64>]| {
        let mut w1t = vec![0.0; i * h];
        for r in 0..h {
            for c in 0..i {
                w1t[c * h + r] = x[1][r * i + c];
            }
        }
        let hid: Vec<f64> =
            matmul64(&x[0], &w1t, b, i, h).into_iter().map(|v| v.max(0.0)).collect();
        dot(&matmul64(&hid, &x[2], b, h, o), &w)
    };
    check_gradients(
        "mlp",
        &|g, x| {
            let w1t = g.transpose(x[1]).unwrap();
            let z = g.matmul(x[0], w1t).unwrap();
            let a = g.relu(z).unwrap();
            let y = g.matmul(a, x[2]).unwrap();
            weighted_sum(g, y, 13)
        },
        &reference,
        &inputs,
        1e-4,
    );
}

fn log_softmax64(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

#[test]
fn grad_cross_entropy_and_embedding_lookup() {
    // logits = onehot(tokens) @ E ; loss = CE(logits, targets): an embedding lookup as a matmul.
    let (b, vocab, c) = (4, 5, 3);
    let tokens = [0usize, 3, 3, 1];
    let labels = [2usize, 0, 1, 2];
    let mut onehot = vec![0.0f32; b * vocab];
    let mut targets = vec![0.0f32; b * c];
    for r in 0..b {
        onehot[r * vocab + tokens[r]] = 1.0;
        targets[r * c + labels[r]] = 1.0;
    }
    let inputs = vec![
        (vec![b, vocab], onehot),
        (vec![vocab, c], random(&[vocab, c], 14, -2.0, 2.0)),
        (vec![b, c], targets),
    ];
    let reference = |x: &[Vec<f64>]| {
        let logits = matmul64(&x[0], &x[1], b, vocab, c);
        let mut loss = 0.0;
        for r in 0..b {
            let lp = log_softmax64(&logits[r * c..(r + 1) * c]);
            loss -= dot(&lp, &x[2][r * c..(r + 1) * c]);
        }
        loss / b as f64
    };
    check_gradients(
        "cross-entropy",
        &|g, x| {
            let logits = g.matmul(x[0], x[1]).unwrap();
            g.cross_entropy(logits, x[2]).unwrap()
        },
        &reference,
        &inputs,
        1e-4,
    );
}

/// An embedding of one-hot tokens, as a product with the table and with a transposed table:
/// the kernels skip the zeros of the one-hot operand (forward, A sparse) and of its transpose
/// (the tables' gradients, A or B sparse), with the same values as the dense reference.
#[test]
fn sparse_products_of_one_hot_embeddings() {
    // Large enough (8 x 64 x 16) that the products are not left to the small-product loops.
    let (b, vocab, d) = (8, 64, 16);
    let tokens = [0usize, 9, 9, 3, 63, 7, 40, 12];
    let mut onehot = vec![0.0f32; b * vocab];
    for (r, &t) in tokens.iter().enumerate() {
        onehot[r * vocab + t] = 1.0;
    }
    let w = weights64(b * d, 21);
    let inputs = vec![
        (vec![b, vocab], onehot),
        (vec![vocab, d], random(&[vocab, d], 22, -1.0, 1.0)),
        (vec![d, vocab], random(&[d, vocab], 23, -1.0, 1.0)),
    ];
    let reference = |x: &[Vec<f64>]| {
        let mut ft = vec![0.0; vocab * d];
        for i in 0..d {
            for j in 0..vocab {
                ft[j * d + i] = x[2][i * vocab + j];
            }
        }
        let e = matmul64(&x[0], &x[1], b, vocab, d);
        let f = matmul64(&x[0], &ft, b, vocab, d);
        dot(&e.iter().zip(&f).map(|(p, q)| p * q).collect::<Vec<_>>(), &w)
    };
    let before = kernels::cpu::SPARSE_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed);
    check_gradients(
        "one-hot embeddings",
        &|g, x| {
            let e = g.matmul(x[0], x[1]).unwrap();
            let ft = g.transpose(x[2]).unwrap();
            let f = g.matmul(x[0], ft).unwrap();
            let p = g.mul(e, f).unwrap();
            weighted_sum(g, p, 21)
        },
        &reference,
        &inputs,
        1e-4,
    );
    let sparse = kernels::cpu::SPARSE_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        sparse >= 4,
        "the two forward products and the two table gradients skip zeros ({sparse} did)"
    );
}

#[test]
fn grad_attention_softmax() {
    // softmax(q @ k^T / sqrt(d)) @ v with batch and head axes.
    let (bt, t, d) = (2, 3, 4);
    let s = vec![bt, t, d];
    let inputs = vec![
        (s.clone(), random(&s, 15, -1.0, 1.0)),
        (s.clone(), random(&s, 16, -1.0, 1.0)),
        (s.clone(), random(&s, 17, -1.0, 1.0)),
    ];
    let w = weights64(bt * t * d, 18);
    let reference = |x: &[Vec<f64>]| {
        let mut out = Vec::new();
        for bb in 0..bt {
            let at = |m: &[f64], i: usize, j: usize| m[bb * t * d + i * d + j];
            for i in 0..t {
                let scores: Vec<f64> = (0..t)
                    .map(|j| {
                        (0..d).map(|e| at(&x[0], i, e) * at(&x[1], j, e)).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let p: Vec<f64> = log_softmax64(&scores).into_iter().map(f64::exp).collect();
                for e in 0..d {
                    out.push((0..t).map(|j| p[j] * at(&x[2], j, e)).sum());
                }
            }
        }
        dot(&out, &w)
    };
    check_gradients(
        "attention",
        &|g, x| {
            let kt = g.transpose(x[1]).unwrap();
            let sc = g.matmul(x[0], kt).unwrap();
            let sc = g.scale(sc, 1.0 / (d as f32).sqrt()).unwrap();
            let p = g.softmax(sc).unwrap();
            let y = g.matmul(p, x[2]).unwrap();
            weighted_sum(g, y, 18)
        },
        &reference,
        &inputs,
        1e-4,
    );
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let logits = vec![1e4f32, -1e4, 0.0, 89.0, 88.0, -1e4];
    let targets = vec![0.0f32, 1.0, 0.0, 1.0, 0.0, 0.0];
    let inputs = vec![(vec![2, 3], logits.clone()), (vec![2, 3], targets.clone())];
    let (loss, grads) = run_graph(&|g, x| g.cross_entropy(x[0], x[1]).unwrap(), &inputs, true);
    let l64: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    let expected = -(log_softmax64(&l64[0..3])[1] + log_softmax64(&l64[3..6])[0]) / 2.0;
    assert!((f64::from(loss) - expected).abs() < 1e-3 * expected, "{loss} vs {expected}");
    assert!(grads[0].iter().all(|v| v.is_finite()));
}

/// A tiny architecture for session tests: logits = relu(x @ W1) @ W2.
pub(super) struct Tiny;

impl Architecture for Tiny {
    fn parameters(&self) -> Vec<ParamDef> {
        vec![
            ParamDef {
                name: "w1".into(),
                shape: vec![3, 4],
                init: Init::Normal { std: 0.8 },
                prunable: true,
            },
            ParamDef {
                name: "w2".into(),
                shape: vec![4, 2],
                init: Init::Normal { std: 0.8 },
                prunable: true,
            },
        ]
    }

    fn forward(
        &self,
        g: &mut GraphBuilder,
        p: &BTreeMap<String, Var>,
        x: Var,
    ) -> ticketlab_api::Result<Var> {
        let h = g.matmul(x, p["w1"])?;
        let h = g.relu(h)?;
        g.matmul(h, p["w2"])
    }
}

pub(super) fn tiny_split(n: usize, seed: u64) -> Split {
    let x = random(&[n, 3], seed, -1.0, 1.0);
    let labels = (0..n).map(|i| u32::from(x[i * 3] + x[i * 3 + 1] > 0.0)).collect();
    Split { x: HostTensor::new(vec![n, 3], x), y: Targets::Classes { labels, n_classes: 2 } }
}

/// f64 host forward of [`Tiny`] with a scalar objective.
fn tiny_loss64(w1: &[f64], w2: &[f64], split: &Split) -> f64 {
    let n = split.len();
    let x: Vec<f64> = split.x.data.iter().map(|&v| f64::from(v)).collect();
    let h: Vec<f64> = matmul64(&x, w1, n, 3, 4).into_iter().map(|v| v.max(0.0)).collect();
    let logits = matmul64(&h, w2, n, 4, 2);
    let Targets::Classes { labels, .. } = &split.y else { unreachable!() };
    (0..n).map(|i| -log_softmax64(&logits[i * 2..i * 2 + 2])[labels[i] as usize]).sum::<f64>()
        / n as f64
}

#[test]
fn hessian_vector_product_matches_finite_differences_of_gradients() {
    let params = init_params(&Tiny, 3);
    let split = tiny_split(8, 4);
    let v: NamedTensors = params
        .iter()
        .map(|(k, t)| (k.clone(), HostTensor::new(t.shape.clone(), random(&t.shape, 5, -1.0, 1.0))))
        .collect();
    let obj = Objective::CrossEntropy { temperature: 1.0 };
    let hv = hessian_gradient_product(&Tiny, &params, None, &split, obj, &v, device()).unwrap();
    // Central differences of the f64 gradient along v.
    let grad64 = |p: &NamedTensors| {
        let w1: Vec<f64> = p["w1"].data.iter().map(|&x| f64::from(x)).collect();
        let w2: Vec<f64> = p["w2"].data.iter().map(|&x| f64::from(x)).collect();
        let mut g = Vec::new();
        for (which, len) in [(0, 12), (1, 8)] {
            for j in 0..len {
                let e = 1e-5;
                let (mut a1, mut a2, mut b1, mut b2) =
                    (w1.clone(), w2.clone(), w1.clone(), w2.clone());
                if which == 0 {
                    a1[j] += e;
                    b1[j] -= e;
                } else {
                    a2[j] += e;
                    b2[j] -= e;
                }
                g.push((tiny_loss64(&a1, &a2, &split) - tiny_loss64(&b1, &b2, &split)) / (2.0 * e));
            }
        }
        g
    };
    let h = 1e-3f32;
    let shifted = |sign: f32| -> NamedTensors {
        params
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    HostTensor::new(
                        t.shape.clone(),
                        t.data.iter().zip(&v[k].data).map(|(a, b)| a + sign * h * b).collect(),
                    ),
                )
            })
            .collect()
    };
    let (gp, gm) = (grad64(&shifted(1.0)), grad64(&shifted(-1.0)));
    let fd: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * f64::from(h))).collect();
    let got: Vec<f32> = hv["w1"].data.iter().chain(&hv["w2"].data).copied().collect();
    for (g, f) in got.iter().zip(&fd) {
        assert!(
            (f64::from(*g) - f).abs() < 2e-2 * (1.0 + f.abs()),
            "Hv {g} vs finite difference {f}"
        );
    }
    assert!(fd.iter().any(|v| v.abs() > 1e-3), "the check must be non-trivial");
}

#[test]
fn gradients_match_f64_reference() {
    let params = init_params(&Tiny, 21);
    let split = tiny_split(16, 22);
    let g = gradients(
        &Tiny,
        &params,
        None,
        &split,
        Objective::CrossEntropy { temperature: 1.0 },
        device(),
    )
    .unwrap();
    let w1: Vec<f64> = params["w1"].data.iter().map(|&x| f64::from(x)).collect();
    let w2: Vec<f64> = params["w2"].data.iter().map(|&x| f64::from(x)).collect();
    for j in 0..12 {
        let e = 1e-6;
        let (mut a, mut b) = (w1.clone(), w1.clone());
        a[j] += e;
        b[j] -= e;
        let fd = (tiny_loss64(&a, &w2, &split) - tiny_loss64(&b, &w2, &split)) / (2.0 * e);
        assert!((f64::from(g["w1"].data[j]) - fd).abs() < 1e-4, "{} vs {fd}", g["w1"].data[j]);
    }
}

/// PyTorch's AdamW update written independently, in f64.
fn torch_adamw_reference(
    p0: &[f64],
    grads: &[Vec<f64>],
    lr: f64,
    wd: f64,
    b1: f64,
    b2: f64,
    eps: f64,
) -> Vec<f64> {
    let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0; p0.len()], vec![0.0; p0.len()]);
    for (t, g) in grads.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mhat = m[i] / (1.0 - b1.powi(t));
            let vhat = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * mhat / (vhat.sqrt() + eps);
        }
    }
    p
}

#[test]
fn adamw_ten_steps_match_pytorch_rule() {
    let cfg = OptimizerConfig {
        kind: OptimizerKind::AdamW,
        lr: 1e-2,
        weight_decay: 0.5,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-8,
    };
    let defs =
        vec![ParamDef { name: "p".into(), shape: vec![5], init: Init::Zeros, prunable: true }];
    let mut state = optim::OptimizerState::new(cfg, &defs);
    let p0 = random(&[5], 30, -1.0, 1.0);
    let mut p = p0.clone();
    let mut grads = Vec::new();
    for s in 0..10 {
        let g = random(&[5], 100 + s, -1.0, 1.0);
        state.update(0, &mut p, &g, None);
        state.finish_step();
        grads.push(g.iter().map(|&x| f64::from(x)).collect());
    }
    let expected = torch_adamw_reference(
        &p0.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        &grads,
        1e-2,
        0.5,
        0.9,
        0.98,
        1e-8,
    );
    for (a, b) in p.iter().zip(&expected) {
        assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert_eq!(state.steps(), 10);
}

#[test]
fn sgd_momentum_matches_pytorch_rule() {
    let cfg = OptimizerConfig {
        kind: OptimizerKind::Sgd,
        lr: 0.1,
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.0,
        eps: 0.0,
    };
    let defs =
        vec![ParamDef { name: "p".into(), shape: vec![1], init: Init::Zeros, prunable: true }];
    let mut state = optim::OptimizerState::new(cfg, &defs);
    let mut p = vec![1.0f32];
    let (mut pr, mut buf) = (1.0f64, 0.0f64);
    for s in 0..5 {
        let g = 0.5 - s as f32 * 0.2;
        state.update(0, &mut p, &[g], None);
        state.finish_step();
        let gi = f64::from(g) + 0.01 * pr;
        buf = if s == 0 { gi } else { 0.9 * buf + gi };
        pr -= 0.1 * buf;
    }
    assert!((f64::from(p[0]) - pr).abs() < 1e-6);
}

/// A parameter large enough to be updated in pieces on the kernel threads (of a length no
/// thread count divides evenly, every third weight masked) gets the bits of one thread, with
/// AdamW and with SGD.
#[test]
fn the_optimizer_split_over_threads_changes_no_bit() {
    let n = 20_011;
    let defs =
        vec![ParamDef { name: "p".into(), shape: vec![n], init: Init::Zeros, prunable: true }];
    let mask: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
    let train = |threads: usize, kind: OptimizerKind| -> Vec<u32> {
        let cfg = OptimizerConfig { kind, lr: 1e-2, ..OptimizerConfig::paper_adamw() };
        let mut state = optim::OptimizerState::new(cfg, &defs);
        let mut p = random(&[n], 50, -1.0, 1.0);
        kernels::with_threads(threads, || {
            for s in 0..3 {
                let g = random(&[n], 60 + s, -1.0, 1.0);
                state.update(0, &mut p, &g, Some(&mask));
                state.finish_step();
            }
        });
        p.iter().map(|x| x.to_bits()).collect()
    };
    for kind in [OptimizerKind::AdamW, OptimizerKind::Sgd] {
        let one = train(1, kind);
        let splits = kernels::cpu::splits_on_this_thread();
        for threads in [2, 3] {
            assert!(train(threads, kind) == one, "{kind:?} on {threads} threads");
        }
        assert!(kernels::cpu::splits_on_this_thread() >= splits + 6, "{kind:?}: not split");
    }
}

/// A session on several kernel threads may run steps on one thread instead where that is
/// faster ([`kernels::ThreadTuner`]): its first trial runs steps both ways, and every step gives
/// the bits it gets on one thread, as does a session whose threads are fixed.
#[test]
fn steps_tuned_between_one_thread_and_several_change_no_bit() {
    // Hidden activations of 20,000 x 4 elements: the elementwise kernels split.
    let split = tiny_split(20_000, 77);
    let spec = StepSpec::paper(20_000);
    let train = |threads: usize, fixed: bool| {
        kernels::with_threads(threads, || {
            let params = init_params(&Tiny, 78);
            let mut s = TrainingSession::new(&Tiny, params, None, &spec, &split).unwrap();
            if fixed {
                s.fix_threads();
            }
            s.set_batch(&split).unwrap();
            for _ in 0..30 {
                s.step().unwrap();
            }
            let bits: Vec<u32> = s
                .params()
                .unwrap()
                .values()
                .flat_map(|t| t.data.iter().map(|x| x.to_bits()))
                .collect();
            (bits, s.single_thread_steps())
        })
    };
    let (one, _) = train(1, true);
    let splits = kernels::cpu::splits_on_this_thread();
    let (fixed, none) = train(2, true);
    assert!(kernels::cpu::splits_on_this_thread() > splits, "the kernels split");
    let (tuned, single) = train(2, false);
    assert_eq!(none, 0, "fixed threads never run a step on one");
    assert!(single >= 8, "the trial ran steps on one thread: {single}");
    assert!(fixed == one, "split steps");
    assert!(tuned == one, "tuned steps");
}

#[test]
fn masked_weights_stay_exactly_zero_for_100_steps() {
    let params = init_params(&Tiny, 40);
    let mask = every_third_masked(&params);
    let split = tiny_split(32, 41);
    let mut cfg = OptimizerConfig::paper_adamw();
    cfg.lr = 1e-2;
    let mut s = TrainingSession::new(
        &Tiny,
        params,
        Some(mask.clone()),
        &StepSpec {
            loss: LossKind::CrossEntropy,
            precision: LossPrecision::F32,
            optimizer: cfg,
            batch_size: 32,
            device: device(),
        },
        &split,
    )
    .unwrap();
    train_100_steps_masked(&mut s, &split, &mask);
}

#[test]
fn a_new_mask_takes_effect_in_the_compiled_graph_with_its_moments_cleared() {
    let params = init_params(&Tiny, 42);
    let ones: MaskSet = params
        .iter()
        .map(|(name, t)| (name.clone(), HostTensor::full(t.shape.clone(), 1.0)))
        .collect();
    let split = tiny_split(32, 43);
    let spec = StepSpec::paper(32);
    let mut s = TrainingSession::new(&Tiny, params, Some(ones), &spec, &split).unwrap();
    s.set_batch(&split).unwrap();
    for _ in 0..5 {
        s.step().unwrap();
    }
    let mask = every_third_masked(&s.params().unwrap());
    s.set_mask(0, mask.clone()).unwrap();
    // The removed weights are 0 at once, and so are their AdamW moments.
    assert_masked_weights_are_zero(&s.params().unwrap(), &mask);
    for (key, state) in s.optimizer_state(0) {
        let name = key.split_once('/').unwrap().1;
        for (i, &k) in mask[name].data.iter().enumerate() {
            if k == 0.0 {
                assert_eq!(state.data[i], 0.0, "{key}[{i}]");
            }
        }
    }
    // The graph's gradients see the new mask: removed weights get none and stay 0.
    train_100_steps_masked(&mut s, &split, &mask);
    for (key, state) in s.optimizer_state(0) {
        let name = key.split_once('/').unwrap().1;
        for (i, &k) in mask[name].data.iter().enumerate() {
            if k == 0.0 {
                assert_eq!(state.data[i], 0.0, "{key}[{i}] after training");
            }
        }
    }
    // Growing them back (SET, RigL): they start at 0, with no moments, and then train.
    let all: MaskSet =
        mask.iter().map(|(n, m)| (n.clone(), HostTensor::full(m.shape.clone(), 1.0))).collect();
    s.set_mask(0, all).unwrap();
    let params = s.params().unwrap();
    for (name, m) in &mask {
        for (i, &k) in m.data.iter().enumerate() {
            if k == 0.0 {
                assert_eq!(params[name].data[i], 0.0, "{name}[{i}] grows from 0");
            }
        }
    }
    s.step().unwrap();
    let grown = s.params().unwrap();
    let moved = mask.iter().any(|(name, m)| {
        m.data.iter().enumerate().any(|(i, &k)| k == 0.0 && grown[name].data[i] != 0.0)
    });
    assert!(moved, "grown weights train");
}

/// Trains `s` on `split` for 100 steps; the loss falls and the weights `mask` removes stay 0.
pub(super) fn train_100_steps_masked(s: &mut TrainingSession<'_>, split: &Split, mask: &MaskSet) {
    s.set_batch(split).unwrap();
    let first = s.step().unwrap();
    let mut last = first;
    for _ in 0..99 {
        last = s.step().unwrap();
    }
    assert!(last < first, "training must make progress: {first} -> {last}");
    assert_masked_weights_are_zero(&s.params().unwrap(), mask);
}

/// A mask that removes every third weight of each parameter.
pub(super) fn every_third_masked(params: &NamedTensors) -> MaskSet {
    params
        .iter()
        .map(|(name, t)| {
            let data = (0..t.len()).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
            (name.clone(), HostTensor::new(t.shape.clone(), data))
        })
        .collect()
}

/// Every masked weight is exactly +0.0 and every kept one is not 0.
pub(super) fn assert_masked_weights_are_zero(params: &NamedTensors, mask: &MaskSet) {
    for (name, t) in params {
        for (w, k) in t.data.iter().zip(&mask[name].data) {
            if *k == 0.0 {
                assert_eq!(w.to_bits(), 0.0f32.to_bits(), "masked weight of {name} moved");
            } else {
                assert!(*w != 0.0, "a kept weight of {name} is exactly 0");
            }
        }
    }
}

/// The gradient one SGD step (no decay, no momentum) applies: `(w0 - w1) / lr`.
fn sgd_step_gradient(
    params: &NamedTensors,
    split: &Split,
    precision: LossPrecision,
    lr: f64,
    clip: Option<f64>,
) -> (f64, NamedTensors) {
    let optimizer = OptimizerConfig {
        kind: OptimizerKind::Sgd,
        lr,
        weight_decay: 0.0,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
    };
    let spec = StepSpec {
        loss: LossKind::CrossEntropy,
        precision,
        optimizer,
        batch_size: split.len(),
        device: Device::Cpu,
    };
    let mut s = TrainingSession::new(&Tiny, params.clone(), None, &spec, split).unwrap();
    s.set_grad_clip(0, clip);
    s.set_batch(split).unwrap();
    let loss = s.step().unwrap();
    let after = s.params().unwrap();
    let grad = params
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                HostTensor::new(
                    t.shape.clone(),
                    t.data
                        .iter()
                        .zip(&after[k].data)
                        .map(|(a, b)| ((a - b) as f64 / lr) as f32)
                        .collect(),
                ),
            )
        })
        .collect();
    (loss, grad)
}

/// Clipping scales the whole gradient to the global norm asked for, as PyTorch's
/// `clip_grad_norm_`, and leaves a gradient already below it alone.
#[test]
fn gradients_are_clipped_to_a_global_norm() {
    let params = init_params(&Tiny, 60);
    let split = tiny_split(24, 61);
    let norm = |g: &NamedTensors| {
        g.values().flat_map(|t| &t.data).map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
    };
    let (_, full) = sgd_step_gradient(&params, &split, LossPrecision::F32, 1.0, None);
    let total = norm(&full);
    let (_, clipped) =
        sgd_step_gradient(&params, &split, LossPrecision::F32, 1.0, Some(total / 4.0));
    assert!(
        (norm(&clipped) - total / 4.0).abs() < 1e-4 * total,
        "{} vs {}",
        norm(&clipped),
        total / 4.0
    );
    for (k, t) in &full {
        for (a, b) in t.data.iter().zip(&clipped[k].data) {
            assert!((a / 4.0 - b).abs() <= 1e-4 * (1e-3 + a.abs()), "{k}: {a} / 4 vs {b}");
        }
    }
    let (_, loose) = sgd_step_gradient(&params, &split, LossPrecision::F32, 1.0, Some(total * 2.0));
    assert_eq!(loose, full);
}

#[test]
fn f64_loss_gives_the_same_gradient_and_f32_keeps_confident_gradients() {
    let params = init_params(&Tiny, 60);
    let split = tiny_split(24, 61);
    let before =
        evaluate(&Tiny, &params, None, &split, LossKind::CrossEntropy, Device::Cpu).unwrap();
    let (l32, g32) = sgd_step_gradient(&params, &split, LossPrecision::F32, 1.0, None);
    let (l64, g64) = sgd_step_gradient(&params, &split, LossPrecision::F64, 1.0, None);
    assert_eq!(l64.to_bits(), before.loss.to_bits(), "the f64 step reports the evaluation's loss");
    assert!((l32 - l64).abs() < 1e-6 * l64, "{l32} vs {l64}");
    for (k, t) in &g32 {
        for (a, b) in t.data.iter().zip(&g64[k].data) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{k}: f32 {a} vs f64 {b}");
        }
    }
    // Confident, correct predictions: label every example with the network's own answer and
    // scale W2 until every margin exceeds 20 nats, where f32 rounds p(label) to 1.
    let out = forward(&Tiny, &params, None, &split.x, Device::Cpu).unwrap();
    let keep: Vec<usize> = (0..split.len())
        .filter(|&i| (out.data[2 * i] - out.data[2 * i + 1]).abs() > 0.05)
        .collect();
    let margin = keep
        .iter()
        .map(|&i| (out.data[2 * i] - out.data[2 * i + 1]).abs())
        .fold(f32::INFINITY, f32::min);
    let mut confident = params.clone();
    confident.get_mut("w2").unwrap().data.iter_mut().for_each(|w| *w *= 20.0 / margin);
    let labels = keep.iter().map(|&i| u32::from(out.data[2 * i + 1] > out.data[2 * i])).collect();
    let x: Vec<f32> = keep.iter().flat_map(|&i| split.x.data[3 * i..3 * i + 3].to_vec()).collect();
    let sure = Split {
        x: HostTensor::new(vec![keep.len(), 3], x),
        y: Targets::Classes { labels, n_classes: 2 },
    };
    // dL/dW2 = h^T (softmax - onehot) / n, in f64 on the host.
    let n = sure.len();
    let x64: Vec<f64> = sure.x.data.iter().map(|&v| f64::from(v)).collect();
    let w1: Vec<f64> = confident["w1"].data.iter().map(|&v| f64::from(v)).collect();
    let w2: Vec<f64> = confident["w2"].data.iter().map(|&v| f64::from(v)).collect();
    let h: Vec<f64> = matmul64(&x64, &w1, n, 3, 4).into_iter().map(|v| v.max(0.0)).collect();
    let logits = matmul64(&h, &w2, n, 4, 2);
    let Targets::Classes { labels, .. } = &sure.y else { unreachable!() };
    let mut reference = vec![0.0f64; 8];
    for i in 0..n {
        let lp = log_softmax64(&logits[2 * i..2 * i + 2]);
        for c in 0..2 {
            let d = (lp[c].exp() - f64::from(u8::from(labels[i] as usize == c))) / n as f64;
            (0..4).for_each(|k| reference[2 * k + c] += h[i * 4 + k] * d);
        }
    }
    let error = |g: &NamedTensors| {
        let diff: f64 =
            g["w2"].data.iter().zip(&reference).map(|(a, b)| (f64::from(*a) - b).abs()).sum();
        diff / reference.iter().map(|v| v.abs()).sum::<f64>()
    };
    // The gradients are about 1e-9: a huge step makes them visible next to the weights.
    let (_, g32) = sgd_step_gradient(&confident, &sure, LossPrecision::F32, 1e9, None);
    let (_, g64) = sgd_step_gradient(&confident, &sure, LossPrecision::F64, 1e9, None);
    // In f32, p(label) rounds to 1 and (p - 1) to 0, but the max-subtraction routes the sum of
    // the other classes' gradients back to the argmax, so the f32 graph keeps the gradient too.
    assert!(error(&g64) < 1e-3, "f64 loss: relative error {}", error(&g64));
    assert!(error(&g32) < 1e-3, "f32 loss: relative error {}", error(&g32));
}

#[test]
fn session_is_deterministic_and_matches_one_off_evaluation() {
    let run = || {
        let params = init_params(&Tiny, 50);
        let split = tiny_split(16, 51);
        let mut s = TrainingSession::new(
            &Tiny,
            params,
            None,
            &StepSpec {
                loss: LossKind::CrossEntropy,
                precision: LossPrecision::F32,
                optimizer: OptimizerConfig::paper_adamw(),
                batch_size: 16,
                device: device(),
            },
            &split,
        )
        .unwrap();
        s.set_batch(&split).unwrap();
        for _ in 0..20 {
            s.step().unwrap();
        }
        let e = s.evaluate(&split).unwrap();
        let p = s.params().unwrap();
        let e2 = evaluate(&Tiny, &p, None, &split, LossKind::CrossEntropy, device()).unwrap();
        assert_eq!(e.loss.to_bits(), e2.loss.to_bits());
        (p, e.loss)
    };
    let (a, la) = run();
    let (b, lb) = run();
    assert_eq!(a, b);
    assert_eq!(la.to_bits(), lb.to_bits());
}

/// Each step computes its loss with the weights the previous step wrote: a backend that kept
/// stale weights on its device (or had host copies overwrite the updated ones) would report
/// the first step's loss again and again while `params` moved.
#[test]
fn each_step_reads_the_weights_the_last_one_wrote() {
    let split = tiny_split(16, 53);
    let spec = StepSpec { device: device(), ..StepSpec::paper(16) };
    let mut s = TrainingSession::new(&Tiny, init_params(&Tiny, 52), None, &spec, &split).unwrap();
    s.set_batch(&split).unwrap();
    let mut last = f64::NAN;
    for step in 0..10 {
        let before = evaluate(
            &Tiny,
            &s.params().unwrap(),
            None,
            &split,
            LossKind::CrossEntropy,
            spec.device,
        )
        .unwrap()
        .loss;
        let loss = s.step().unwrap();
        assert!(
            (loss - before).abs() <= 1e-5 * before.abs(),
            "step {step}: the step's loss {loss}, the loss of the weights it started from {before}"
        );
        assert_ne!(loss.to_bits(), last.to_bits(), "step {step}: the loss did not move");
        last = loss;
    }
}

/// luminal's own lowerings of argmax, gather and arange, which its stock CPU compiler breaks:
/// our passes must agree with luminal's uncompiled interpreter.
#[test]
fn kernel_passes_agree_with_uncompiled_luminal_on_argmax_gather_arange() {
    use luminal::prelude::*;
    let results = |compiled: bool| -> Vec<Vec<f32>> {
        let mut cx = Graph::new();
        let a = cx.tensor::<R2<2, 3>>().set(vec![1.0, 5.0, 2.0, 7.0, 0.0, 7.0]);
        let table = cx.tensor::<R2<3, 2>>().set(vec![10.0, 11.0, 20.0, 21.0, 30.0, 31.0]);
        let idx = cx.tensor::<R1<4>>().set(vec![2.0, 0.0, 1.0, 2.0]);
        let argmax = a.argmax().retrieve();
        let gathered = table.gather(idx).retrieve();
        let arange = cx.arange::<Const<5>>().retrieve();
        let mut ids = vec![argmax.id, gathered.id, arange.id];
        if compiled {
            super::kernels::compile(&mut cx, &mut ids, None, Device::Cpu);
        }
        cx.execute();
        ids.iter()
            .map(|&id| {
                cx.get_tensor_ref(id, 0)
                    .unwrap()
                    .data
                    .as_any()
                    .downcast_ref::<Vec<f32>>()
                    .unwrap()
                    .clone()
            })
            .collect()
    };
    let reference = results(false);
    assert_eq!(reference[0], vec![1.0, 2.0]);
    assert_eq!(reference[1], vec![30.0, 31.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0]);
    assert_eq!(reference[2], vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(results(true), reference);
}

/// Fusion evaluates each op with the same f32 arithmetic in the same order, so a graph with
/// every elementwise op, broadcasts, folded constants, slices, pads, reductions and their
/// gradients gives bit-identical values fused and unfused, and does fuse: with rows shorter
/// than a chunk (several rows per chunk, rows split between chunks) and longer.
#[test]
fn fused_elementwise_chains_change_no_bit() {
    for (rows, cols) in [(4, 5), (37, 67), (3, 300)] {
        fused_and_unfused_agree(rows, cols, 1);
    }
}

/// The elementwise kernels, fused or not, copies and reductions split large outputs over the
/// kernel threads (at rows, or inside a row when the whole output is one); every thread count
/// gives the bits of one thread.
#[test]
fn elementwise_kernels_split_over_threads_change_no_bit() {
    for (rows, cols) in [(300, 301), (2, 20_000)] {
        let splits = kernels::cpu::splits_on_this_thread();
        for threads in [2, 3] {
            fused_and_unfused_agree(rows, cols, threads);
        }
        assert!(
            kernels::cpu::splits_on_this_thread() >= splits + 20,
            "outputs of {rows} x {cols} were split"
        );
    }
}

/// Keeps and retrieves `loss` and the contiguous `grads`, and compiles the graph with every
/// CPU pass (`all`) or with products and strided loops only ([`kernels::compile_unfused`]);
/// returns the kept nodes, loss first.
fn compile_kept(g: &mut GraphBuilder, loss: Var, grads: Vec<Var>, all: bool) -> Vec<NodeIndex> {
    let mut ids = vec![loss.node];
    ids.extend(grads.into_iter().map(|gr| g.contiguous_if_needed(gr).node));
    for &id in &ids {
        g.cx.no_delete.insert(id);
        g.cx.to_retrieve.insert(id);
    }
    if all {
        kernels::compile(&mut g.cx, &mut ids, None, Device::Cpu);
    } else {
        kernels::compile_unfused(&mut g.cx, &mut ids);
    }
    ids
}

/// The bits of each of `ids`' values (host `f32` buffers).
pub(crate) fn bits_of(g: &GraphBuilder, ids: &[NodeIndex]) -> Vec<Vec<u32>> {
    ids.iter()
        .map(|&id| {
            let data = &g.cx.get_tensor_ref(id, 0).expect("a kept value").data;
            let values = data.as_any().downcast_ref::<Vec<f32>>().expect("CPU tensors");
            values.iter().map(|v| v.to_bits()).collect()
        })
        .collect()
}

/// Asserts that the graph of [`fused_elementwise_chains_change_no_bit`] gives, at `threads`
/// kernel threads, fused and unfused, the bits it gives unfused at one.
fn fused_and_unfused_agree(rows: usize, cols: usize, threads: usize) {
    let run = |fuse: bool, threads: usize| -> (Vec<Vec<u32>>, usize) {
        let mut g = GraphBuilder::new();
        let x = g.input("x", &[rows, 6]);
        let w = g.input("w", &[6, cols]);
        let t = g.input("targets", &[rows, cols]);
        let h = g.matmul(x, w).unwrap();
        let r = g.relu(h).unwrap();
        let lp = g.log_softmax(r).unwrap();
        let picked = g.mul(lp, t).unwrap();
        let ce = g.sum_all(picked).unwrap();
        let sq = g.mul(h, h).unwrap();
        let sq1 = g.add_scalar(sq, 1.0).unwrap();
        let root = g.sqrt(sq1);
        let e = g.exp(root).unwrap();
        let sliced = g.slice(e, 1, 1, cols - 1).unwrap();
        let padded = g.pad(sliced, 1, 2, 0).unwrap();
        let sn = g.sin(padded);
        let sn3 = g.add_scalar(sn, 3.0).unwrap();
        let rc = g.recip(sn3);
        let c = g.constant(0.3, &[rows, cols]);
        let m = g.modulo(rc, c).unwrap();
        let lt = g.less_than(m, rc).unwrap();
        let mix = g.add(lt, rc).unwrap();
        let extra = g.sum_all(mix).unwrap();
        let loss = g.add(ce, extra).unwrap();
        let grads = autograd::backward(&mut g, loss, &[x, w]).unwrap();
        let ids = compile_kept(&mut g, loss, grads, fuse);
        let fused =
            g.cx.graph
                .node_weights()
                .filter(|op| format!("{op:?}").starts_with("FusedElementwise"))
                .count();
        let mut targets = vec![0.0; rows * cols];
        for i in 0..rows {
            targets[i * cols + (i * 7 + 1) % cols] = 1.0;
        }
        for (leaf, data) in [
            (x, random(&[rows, 6], 3, -1.0, 1.0)),
            (w, random(&[6, cols], 4, -1.0, 1.0)),
            (t, targets),
        ] {
            g.cx.set_tensor(leaf.node, 0, Tensor::new(data));
            g.cx.no_delete.insert(leaf.node);
        }
        kernels::with_threads(threads, || g.cx.execute());
        (bits_of(&g, &ids), fused)
    };
    let (plain, none) = run(false, 1);
    let (fused, groups) = run(true, threads);
    assert_eq!(none, 0);
    assert!(
        groups >= 4,
        "ReLU, log-softmax, the chains above and their gradients fuse: {groups} groups"
    );
    assert!(fused == plain, "fusion changed a result at {rows} x {cols}, {threads} threads");
    let (unfused, _) = run(false, threads);
    assert!(unfused == plain, "{threads} threads changed a result at {rows} x {cols}");
}

/// A product read only by a copy into another axis order (the gradient of `x @ w` with
/// respect to `w`, made contiguous) writes that order itself: the copy is gone, and every
/// element has the bits it had through the copy, for the plain-loop, sgemm and split products
/// (300 x 40 x 90 is above the 1M multiply-adds from which products split).
#[test]
fn products_write_the_layout_their_copy_wanted_with_the_same_bits() {
    for (m, k, n) in [(4, 3, 5), (37, 67, 20), (300, 40, 90)] {
        let run = |layout: bool, threads: usize| -> (Vec<Vec<u32>>, usize) {
            let mut g = GraphBuilder::new();
            let x = g.input("x", &[m, k]);
            let w = g.input("w", &[k, n]);
            let y = g.matmul(x, w).unwrap();
            let loss = weighted_sum(&mut g, y, 5);
            let grads = autograd::backward(&mut g, loss, &[x, w]).unwrap();
            let ids = compile_kept(&mut g, loss, grads, layout);
            // Copies that read a product's output.
            let name = |n: NodeIndex| format!("{:?}", g.cx.graph[n]);
            let copies = g.cx.graph.node_indices().filter(|&n| name(n) == "StridedCopy");
            let copies = copies
                .filter(|&n| {
                    g.cx.get_sources(n).iter().any(|(p, _, _)| name(*p).starts_with("Sgemm"))
                })
                .count();
            for (leaf, shape, seed) in [(x, [m, k], 6), (w, [k, n], 7)] {
                g.cx.set_tensor(leaf.node, 0, Tensor::new(random(&shape, seed, -1.0, 1.0)));
                g.cx.no_delete.insert(leaf.node);
            }
            kernels::with_threads(threads, || g.cx.execute());
            (bits_of(&g, &ids), copies)
        };
        let (through_copy, copies) = run(false, 1);
        assert!(copies >= 1, "the gradient of w is copied into place at {m} x {k} x {n}");
        for threads in [1, 2] {
            let (in_place, left) = run(true, threads);
            assert_eq!(left, 0, "every such copy was absorbed at {m} x {k} x {n}");
            assert!(
                in_place == through_copy,
                "{m} x {k} x {n} at {threads} threads: a product in its copy's layout changed a bit"
            );
        }
    }
}

#[test]
fn shape_mismatch_is_an_error_naming_layer_and_shapes() {
    let mut g = GraphBuilder::new();
    g.set_layer("inproj");
    let a = g.input("a", &[4, 3]);
    let b = g.input("b", &[5, 2]);
    let err = g.matmul(a, b).unwrap_err().to_string();
    assert!(err.contains("inproj") && err.contains("[4, 3]") && err.contains("[5, 2]"), "{err}");
    let err = g.add(a, b).unwrap_err().to_string();
    assert!(err.contains("[4, 3]") && err.contains("[5, 2]"), "{err}");
}

#[test]
fn wrong_parameter_shapes_are_refused_before_running() {
    let mut params = init_params(&Tiny, 1);
    params.insert("w1".into(), HostTensor::zeros(vec![2, 2]));
    let split = tiny_split(4, 2);
    let err = gradients(&Tiny, &params, None, &split, Objective::SumOutputs, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("w1") && err.contains("[2, 2]") && err.contains("[3, 4]"), "{err}");
}

/// Ten steps of [`Tiny`] from seed 60: the weights after them, with the graph compiled while
/// this thread records a profile or not.
fn ten_tiny_steps(profiled: bool) -> (NamedTensors, crate::profile::Profile) {
    let train = || {
        let split = tiny_split(32, 61);
        let spec = StepSpec { precision: LossPrecision::F64, ..StepSpec::paper(32) };
        let mut s =
            TrainingSession::new(&Tiny, init_params(&Tiny, 60), None, &spec, &split).unwrap();
        s.set_batch(&split).unwrap();
        for _ in 0..10 {
            s.step().unwrap();
        }
        s.params().unwrap()
    };
    if profiled { crate::profile::record(train) } else { (train(), Default::default()) }
}

#[test]
fn a_profiled_session_computes_the_same_bits_and_tallies_every_part() {
    use crate::profile::Part;
    let (plain, _) = ten_tiny_steps(false);
    let (profiled, profile) = ten_tiny_steps(true);
    assert_eq!(plain, profiled);
    for part in
        [Part::Elementwise, Part::GraphOverhead, Part::ReadOut, Part::HostLoss, Part::Optimizer]
    {
        let tally = profile.parts.get(&part).unwrap_or_else(|| panic!("no {part:?}: {profile:?}"));
        assert!(tally.seconds > 0.0, "{part:?}: {tally:?}");
    }
    // Each step runs the optimizer once and the executor twice (the host loss's forward pass,
    // then the step).
    assert_eq!(profile.parts[&Part::Optimizer].calls, 10);
    assert_eq!(profile.parts[&Part::GraphOverhead].calls, 20);
    // Per step: the host loss's forward pass (x W1, then h W2: 2 * 32 * (3 * 4 + 4 * 2)
    // FLOPs), and the step's forward pass and the gradients of W2, h and W1 (the same again,
    // and once more for h's), x having none.
    let flops: f64 = profile
        .parts
        .iter()
        .filter(|(p, _)| {
            matches!(p, Part::DenseProduct | Part::SmallProducts | Part::SparseProduct)
        })
        .map(|(_, t)| t.flops)
        .sum();
    let (first, second) = (2.0 * 32.0 * 12.0, 2.0 * 32.0 * 8.0);
    assert_eq!(flops, 10.0 * (2.0 * (first + second) + first + 2.0 * second), "{profile:?}");
    let kernel_seconds: f64 = profile.kernels.values().map(|(_, t)| t.seconds).sum();
    let part_seconds: f64 =
        profile.parts.iter().filter(|(p, _)| p.is_kernel()).map(|(_, t)| t.seconds).sum();
    assert!((kernel_seconds - part_seconds).abs() < 1e-9, "{kernel_seconds} vs {part_seconds}");
}
