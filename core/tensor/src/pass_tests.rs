//! Tests of the graph passes that change how products are computed: row narrowing, matrix-chain
//! reassociation and token gathers. Each compares the rewritten graph with the graph left as
//! built (forward value and every input's gradient), checks that the rewrite fired or left the
//! graph exactly as it was, and checks the cost model.

use std::cell::Cell;

use luminal::graph::NodeIndex;
use luminal::tensor::Tensor;
use rand::Rng;

use super::narrow::narrow;
use super::reassociate::{Order, reassociate};
use super::tests::{every_third_masked, random, rng, train_100_steps_masked, weighted_sum};
use super::*;
use ticketlab_api::data::{Split, Targets};
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, MaskSet, ParamDef, Var, init_params,
};

/// What one evaluation of a test graph gave.
struct Evaluated {
    loss: f32,
    grads: Vec<Vec<f32>>,
    /// Chains rewritten before autograd and after it.
    rewrites: usize,
    /// Nodes narrowed to the rows their readers need.
    narrowed: usize,
    /// Nodes and edges of the graph just before the kernel passes.
    structure: (usize, usize),
    /// Debug names of the compiled graph's ops.
    ops: Vec<String>,
}

/// A model built over its input leaves.
type Build = dyn Fn(&mut GraphBuilder, &[Var]) -> Var;

/// Builds `build` over leaves with `inputs`, differentiates the weighted sum of its output,
/// optionally reassociating (before and after autograd, as sessions do), compiles with our
/// kernels and runs it.
fn evaluate(
    build: &Build,
    inputs: &[(Vec<usize>, Vec<f32>)],
    passes: bool,
    tokens: Option<(usize, usize)>,
) -> Evaluated {
    let mut g = GraphBuilder::new();
    let leaves: Vec<Var> =
        inputs.iter().enumerate().map(|(i, (s, _))| g.input(&format!("in{i}"), s)).collect();
    let y = build(&mut g, &leaves);
    let mut loss = weighted_sum(&mut g, y, 7);
    let (mut rewrites, mut narrowed) = (0, 0);
    if passes {
        let mut held = [loss.node];
        narrowed = narrow(&mut g, &held).unwrap();
        rewrites += reassociate(&mut g, &mut held).unwrap();
        loss = Var { node: held[0], view: loss.view };
    }
    let grads = autograd::backward(&mut g, loss, &leaves).unwrap();
    let mut ids: Vec<NodeIndex> = vec![loss.node];
    ids.extend(grads.into_iter().map(|gr| g.contiguous_if_needed(gr).node));
    for &id in &ids {
        g.cx.no_delete.insert(id);
    }
    if passes {
        rewrites += reassociate(&mut g, &mut ids).unwrap();
    }
    let structure = (g.cx.graph.node_count(), g.cx.graph.edge_count());
    // The token leaves: the first input is one-hot `[n, n_ctx, vocab]`; its indices follow.
    let token_leaves = tokens.map(|(n_ctx, vocab)| {
        let n = inputs[0].0[0];
        let indices = g.input("indices", &[n * n_ctx]);
        let data: Vec<f32> = inputs[0]
            .1
            .chunks(vocab)
            .map(|row| row.iter().position(|&v| v == 1.0).unwrap() as f32)
            .collect();
        g.cx.set_tensor(indices.node, 0, Tensor::new(data));
        g.cx.no_delete.insert(indices.node);
        kernels::TokenLeaves { one_hot: leaves[0].node, indices: indices.node, n, n_ctx, vocab }
    });
    kernels::compile(&mut g.cx, &mut ids, token_leaves.filter(|_| passes), Device::Cpu);
    for (leaf, (_, data)) in leaves.iter().zip(inputs) {
        g.cx.set_tensor(leaf.node, 0, Tensor::new(data.clone()));
        g.cx.no_delete.insert(leaf.node);
    }
    let ops = g.cx.graph.node_weights().map(|op| format!("{op:?}")).collect();
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
    Evaluated {
        loss: read(ids[0])[0],
        grads: ids[1..].iter().map(|&id| read(id)).collect(),
        rewrites,
        narrowed,
        structure,
        ops,
    }
}

/// `|a - b| / |b|` over whole vectors.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Runs `build` with and without the passes; checks values and gradients agree to 1e-5 and
/// returns both evaluations (with passes first).
fn compare(
    name: &str,
    build: &Build,
    inputs: &[(Vec<usize>, Vec<f32>)],
    tokens: Option<(usize, usize)>,
) -> (Evaluated, Evaluated) {
    let on = evaluate(build, inputs, true, tokens);
    let off = evaluate(build, inputs, false, tokens);
    let value = relative_error(&[on.loss], &[off.loss]);
    assert!(value <= 1e-5, "{name}: value {} vs {} (relative error {value:e})", on.loss, off.loss);
    for (i, (a, b)) in on.grads.iter().zip(&off.grads).enumerate() {
        let e = relative_error(a, b);
        assert!(e <= 1e-5, "{name}: gradient of input {i} differs by {e:e}");
    }
    (on, off)
}

fn matrix(rows: usize, cols: usize, seed: u64) -> (Vec<usize>, Vec<f32>) {
    (vec![rows, cols], random(&[rows, cols], seed, -1.0, 1.0))
}

/// `(X · A) · B` with the multiply-adds of both orders.
fn chain_costs(m: usize, a: usize, b: usize, c: usize) -> (usize, usize) {
    (m * a * b + m * b * c, a * b * c + m * a * c)
}

#[test]
fn chains_are_reassociated_exactly_when_cheaper_on_random_shapes() {
    let mut r = rng(1);
    let (mut fired, mut kept) = (0, 0);
    for case in 0..24u64 {
        let (m, a, b, c) =
            (r.gen_range(1..120), r.gen_range(1..40), r.gen_range(1..160), r.gen_range(1..40));
        let inputs =
            [matrix(m, a, case * 3), matrix(a, b, case * 3 + 1), matrix(b, c, case * 3 + 2)];
        let build = |g: &mut GraphBuilder, x: &[Var]| {
            let p = g.matmul(x[0], x[1]).unwrap();
            g.matmul(p, x[2]).unwrap()
        };
        let (on, off) = compare(&format!("chain {m}x{a}x{b}x{c}"), &build, &inputs, None);
        let (today, other) = chain_costs(m, a, b, c);
        if other < today {
            assert!(
                on.rewrites >= 1,
                "{m}x{a}x{b}x{c}: X(AB) costs {other} < {today} but the chain was kept"
            );
            fired += 1;
        } else {
            assert_eq!(
                on.rewrites, 0,
                "{m}x{a}x{b}x{c}: today's order costs {today} <= {other} but the chain was rewritten"
            );
            assert_eq!(
                on.structure, off.structure,
                "a chain left alone leaves the graph unchanged"
            );
            kept += 1;
        }
    }
    assert!(
        fired > 0 && kept > 0,
        "the random shapes cover both outcomes ({fired} fired, {kept} kept)"
    );
}

#[test]
fn the_papers_embedding_and_unembedding_chains_are_rewritten() {
    // counts [B, vocab] · W_E^T · W_in^T, then relu, · W_out^T · W_U, at a small scale.
    let (batch, vocab, d, w) = (40, 11, 60, 6);
    let mut counts = vec![0.0f32; batch * vocab];
    let mut r = rng(3);
    for row in counts.chunks_mut(vocab) {
        row[r.gen_range(0..vocab)] += 1.0;
        row[r.gen_range(0..vocab)] += 1.0;
    }
    let inputs = [
        (vec![batch, vocab], counts),
        matrix(d, vocab, 4),
        matrix(w, d, 5),
        matrix(d, w, 6),
        matrix(d, vocab, 7),
    ];
    let build = |g: &mut GraphBuilder, x: &[Var]| {
        let we = g.transpose(x[1]).unwrap();
        let emb = g.matmul(x[0], we).unwrap();
        let win = g.transpose(x[2]).unwrap();
        let pre = g.matmul(emb, win).unwrap();
        let hidden = g.relu(pre).unwrap();
        let wout = g.transpose(x[3]).unwrap();
        let out = g.matmul(hidden, wout).unwrap();
        g.matmul(out, x[4]).unwrap()
    };
    let (on, _) = compare("paper MLP", &build, &inputs, None);
    assert_eq!(
        on.rewrites, 2,
        "both chains around the ReLU are rewritten, the ReLU is not crossed"
    );
}

#[test]
fn a_relu_between_or_a_shared_intermediate_stops_the_chain() {
    // Shapes where X(AB) would be much cheaper, so only the structure can stop the rewrite.
    let inputs = [matrix(200, 30, 10), matrix(30, 100, 11), matrix(100, 5, 12)];
    let through_relu = |g: &mut GraphBuilder, x: &[Var]| {
        let p = g.matmul(x[0], x[1]).unwrap();
        let h = g.relu(p).unwrap();
        g.matmul(h, x[2]).unwrap()
    };
    let shared = |g: &mut GraphBuilder, x: &[Var]| {
        let p = g.matmul(x[0], x[1]).unwrap();
        let y = g.matmul(p, x[2]).unwrap();
        // `p` is read again: its output must stay.
        let ps = g.sum_all(p).unwrap();
        let ys = g.sum_all(y).unwrap();
        let total = g.add(ps, ys).unwrap();
        g.reshape(total, &[1, 1]).unwrap()
    };
    for (name, build) in [("relu", &through_relu as &Build), ("shared", &shared)] {
        let (on, off) = compare(name, build, &inputs, None);
        assert_eq!(on.rewrites, 0, "{name}: nothing to reassociate");
        assert_eq!(on.structure, off.structure, "{name}: the graph is unchanged");
    }
}

#[test]
fn longer_chains_and_transposed_intermediates_are_reordered() {
    // ((X A)^T ...) : the intermediate is read transposed by the next product.
    let inputs = [matrix(90, 4, 20), matrix(4, 70, 21), matrix(90, 3, 22), matrix(3, 2, 23)];
    let build = |g: &mut GraphBuilder, x: &[Var]| {
        let p = g.matmul(x[0], x[1]).unwrap(); // [90, 70]
        let pt = g.transpose(p).unwrap(); // [70, 90]
        let q = g.matmul(pt, x[2]).unwrap(); // [70, 3]
        g.matmul(q, x[3]).unwrap() // [70, 2]
    };
    let (on, _) = compare("transposed chain", &build, &inputs, None);
    assert!(on.rewrites >= 1);
}

#[test]
fn the_cost_model_picks_the_cheapest_order() {
    // (dims, cheapest multiply-adds, order)
    let table: &[(&[usize], usize, &str)] = &[
        (&[30, 35, 15, 5, 10, 20, 25], 15125, "((0 (1 2)) ((3 4) 5))"),
        (&[10, 20, 30], 6000, "(0 1)"),
        (&[911, 67, 500, 48], 67 * 500 * 48 + 911 * 67 * 48, "(0 (1 2))"),
        (&[911, 48, 500, 67], 48 * 500 * 67 + 911 * 48 * 67, "(0 (1 2))"),
        (&[4, 50, 60, 70], 4 * 50 * 60 + 4 * 60 * 70, "((0 1) 2)"),
        (&[1, 100, 1, 100], 100 + 100, "((0 1) 2)"),
    ];
    for (dims, cost, order) in table {
        let o = Order::for_dims(dims);
        let last = dims.len() - 2;
        assert_eq!(o.cost(0, last), *cost, "{dims:?}");
        assert_eq!(o.describe(0, last), *order, "{dims:?}");
    }
}

/// One-hot `[n, n_ctx, vocab]` inputs for random tokens.
fn one_hot(n: usize, n_ctx: usize, vocab: usize, seed: u64) -> (Vec<usize>, Vec<f32>) {
    let mut r = rng(seed);
    let mut x = vec![0.0f32; n * n_ctx * vocab];
    for row in x.chunks_mut(vocab) {
        row[r.gen_range(0..vocab)] = 1.0;
    }
    (vec![n, n_ctx, vocab], x)
}

fn count_ops(ops: &[String], name: &str) -> usize {
    ops.iter().filter(|o| o.starts_with(name)).count()
}

#[test]
fn token_products_become_gathers_and_scatter_adds() {
    let (n, n_ctx, vocab, d) = (13, 3, 9, 5);
    for (name, build) in token_models(n, n_ctx) {
        let (on, off) =
            compare(name, &*build, &token_inputs(n, n_ctx, vocab, d), Some((n_ctx, vocab)));
        assert!(count_ops(&on.ops, "GatherRows") >= 1, "{name}: the forward product is a gather");
        assert!(
            count_ops(&on.ops, "ScatterAddRows") >= 1,
            "{name}: the table's gradient is a scatter-add"
        );
        assert_eq!(
            count_ops(&off.ops, "GatherRows") + count_ops(&off.ops, "ScatterAddRows"),
            0,
            "{name}: no token leaves, no gathers"
        );
    }
}

/// Gathers and scatter-adds large enough to split over the kernel threads (by rows, and by
/// columns for a transposed output) give the bits of one thread.
#[test]
fn token_gathers_split_over_threads_change_no_bit() {
    let (n, n_ctx, vocab, d) = (400, 3, 40, 64);
    let inputs = token_inputs(n, n_ctx, vocab, d);
    for (name, build) in token_models(n, n_ctx) {
        let bits = |e: &Evaluated| -> Vec<Vec<u32>> {
            std::iter::once(vec![e.loss])
                .chain(e.grads.iter().cloned())
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        let one = evaluate(&*build, &inputs, true, Some((n_ctx, vocab)));
        let splits = kernels::cpu::splits_on_this_thread();
        let three =
            kernels::with_threads(3, || evaluate(&*build, &inputs, true, Some((n_ctx, vocab))));
        assert!(kernels::cpu::splits_on_this_thread() > splits, "{name}: nothing was split");
        assert!(bits(&three) == bits(&one), "{name}: three threads changed a result");
    }
}

/// Two models whose embeddings are products with one-hot tokens `[n, n_ctx, vocab]`: summed
/// over the context (the MLP's token counts) and per token (the transformer's, its output read
/// transposed), over the inputs of [`token_inputs`].
fn token_models(n: usize, n_ctx: usize) -> Vec<(&'static str, Box<Build>)> {
    let counts = |g: &mut GraphBuilder, x: &[Var]| {
        let c = g.sum_reduce(x[0], 1).unwrap();
        let we = g.transpose(x[1]).unwrap();
        let e = g.matmul(c, we).unwrap();
        g.mul(e, e).unwrap()
    };
    let per_token = move |g: &mut GraphBuilder, x: &[Var]| {
        let vocab = x[0].shape()[2];
        let flat = g.reshape(x[0], &[n * n_ctx, vocab]).unwrap();
        let e = g.matmul(flat, x[2]).unwrap();
        // Read transposed by the next product, so the gather writes its output transposed.
        let et = g.transpose(e).unwrap();
        let y = g.matmul(et, x[3]).unwrap();
        g.mul(y, y).unwrap()
    };
    vec![("counts", Box::new(counts)), ("per token", Box::new(per_token))]
}

/// One-hot tokens, the two tables and the matrix [`token_models`] read.
fn token_inputs(n: usize, n_ctx: usize, vocab: usize, d: usize) -> Vec<(Vec<usize>, Vec<f32>)> {
    vec![
        one_hot(n, n_ctx, vocab, 30),
        matrix(d, vocab, 31),
        matrix(vocab, d, 32),
        matrix(n * n_ctx, d, 33),
    ]
}

/// A prunable parameter of the test architectures, drawn from N(0, 0.5²).
fn def(name: &str, shape: Vec<usize>) -> ParamDef {
    ParamDef { name: name.into(), shape, init: Init::Normal { std: 0.5 }, prunable: true }
}

/// A chain-shaped architecture: `relu(counts · W_E^T · W_in^T) · W_out^T · W_U`, the paper's
/// MLP at a small scale.
struct ChainMlp;

impl Architecture for ChainMlp {
    fn parameters(&self) -> Vec<ParamDef> {
        vec![
            def("W_E", vec![40, 7]),
            def("W_in", vec![6, 40]),
            def("W_out", vec![40, 6]),
            def("W_U", vec![40, 7]),
        ]
    }

    fn forward(
        &self,
        g: &mut GraphBuilder,
        p: &std::collections::BTreeMap<String, Var>,
        x: Var,
    ) -> ticketlab_api::Result<Var> {
        let counts = g.sum_reduce(x, 1)?;
        let we = g.transpose(p["W_E"])?;
        let emb = g.matmul(counts, we)?;
        let win = g.transpose(p["W_in"])?;
        let pre = g.matmul(emb, win)?;
        let hidden = g.relu(pre)?;
        let wout = g.transpose(p["W_out"])?;
        let out = g.matmul(hidden, wout)?;
        g.matmul(out, p["W_U"])
    }
}

/// A block of a transformer on inputs `[batch, ctx, d]` (an MLP with a residual, then causal
/// single-head attention with a residual) whose result is read at positions `start..end` only.
fn block_read_at(start: usize, end: usize) -> impl Fn(&mut GraphBuilder, &[Var]) -> Var {
    move |g: &mut GraphBuilder, x: &[Var]| {
        let [batch, ctx, d] = x[0].shape()[..] else { unreachable!("inputs are [batch, ctx, d]") };
        let project = |g: &mut GraphBuilder, v: Var, w: Var| {
            let wt = g.transpose(w).unwrap();
            g.linear(v, wt).unwrap()
        };
        let (q, k, v) = (project(g, x[0], x[1]), project(g, x[0], x[2]), project(g, x[0], x[3]));
        let kt = g.transpose(k).unwrap();
        let scores = g.matmul(q, kt).unwrap();
        let mut causal = vec![0.0f32; ctx * ctx];
        for i in 0..ctx {
            for j in i + 1..ctx {
                causal[i * ctx + j] = -1e10;
            }
        }
        let causal = g.tensor_constant("causal", &HostTensor::new(vec![ctx, ctx], causal));
        let causal = g.expand(causal, 0, batch).unwrap();
        let scores = g.add(scores, causal).unwrap();
        let attention = g.softmax(scores).unwrap();
        let z = g.matmul(attention, v).unwrap();
        let resid = g.add(x[0], z).unwrap();
        let pre = project(g, resid, x[4]);
        let hidden = g.relu(pre).unwrap();
        let out = project(g, hidden, x[5]);
        let resid = g.add(resid, out).unwrap();
        let read = g.slice(resid, 1, start, end).unwrap();
        let read = g.reshape(read, &[batch * (end - start), d]).unwrap();
        g.matmul(read, x[6]).unwrap()
    }
}

/// Inputs of [`block_read_at`]: `[batch, ctx, d]`, W_Q, W_K, W_V `[d, d]`, W_in `[h, d]`,
/// W_out `[d, h]`, W_U `[d, 3]`.
fn block_inputs(
    batch: usize,
    ctx: usize,
    d: usize,
    h: usize,
    seed: u64,
) -> Vec<(Vec<usize>, Vec<f32>)> {
    vec![
        (vec![batch, ctx, d], random(&[batch, ctx, d], seed, -1.0, 1.0)),
        matrix(d, d, seed + 1),
        matrix(d, d, seed + 2),
        matrix(d, d, seed + 3),
        matrix(h, d, seed + 4),
        matrix(d, h, seed + 5),
        matrix(d, 3, seed + 6),
    ]
}

#[test]
fn rows_read_by_nobody_are_not_computed_on_random_shapes() {
    let mut r = rng(30);
    for case in 0..8u64 {
        let (batch, ctx, d, h) =
            (r.gen_range(1..7), r.gen_range(2..6), r.gen_range(1..9), r.gen_range(1..12));
        let start = r.gen_range(0..ctx);
        let end = r.gen_range(start + 1..=ctx);
        let inputs = block_inputs(batch, ctx, d, h, 100 + 10 * case);
        let name = format!("case {case}: [{batch}, {ctx}, {d}] read at {start}..{end}");
        let (on, off) = compare(&name, &block_read_at(start, end), &inputs, None);
        // Every element still computed has the same operands in the same order.
        assert_eq!(on.loss.to_bits(), off.loss.to_bits(), "{name}: the value is exact");
        if end - start < ctx {
            // The queries, attention, both residuals, the MLP and their products.
            assert!(on.narrowed >= 10, "{name}: {} nodes narrowed", on.narrowed);
        } else {
            assert_eq!(on.narrowed, 0, "{name}: every row is read");
        }
    }
}

#[test]
fn rows_read_elsewhere_are_computed() {
    // `relu(x W^T)` read at the last position, and (or not) read whole by a sum as well.
    let inputs = [(vec![3, 4, 5], random(&[3, 4, 5], 40, -1.0, 1.0)), matrix(6, 5, 41)];
    let build = |read_whole: bool| {
        move |g: &mut GraphBuilder, x: &[Var]| {
            let wt = g.transpose(x[1]).unwrap();
            let pre = g.linear(x[0], wt).unwrap();
            let hidden = g.relu(pre).unwrap();
            let last = g.slice(hidden, 1, 3, 4).unwrap();
            let last = g.reshape(last, &[3, 6]).unwrap();
            if !read_whole {
                return last;
            }
            let total = g.sum_all(hidden).unwrap();
            let total = g.broadcast_to(total, &[3, 6]).unwrap();
            g.add(last, total).unwrap()
        }
    };
    let (alone, _) = compare("read at the last position", &build(false), &inputs, None);
    assert!(alone.narrowed >= 3, "the ReLU and the product narrow: {}", alone.narrowed);
    let (shared, off) = compare("read whole too", &build(true), &inputs, None);
    assert_eq!(shared.narrowed, 0, "a node read whole is computed whole");
    assert_eq!(shared.structure, off.structure, "the graph is unchanged");
}

thread_local! {
    /// Chains [`reassociate`] rewrote on this thread.
    pub(super) static REWRITES: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn masked_weights_stay_exactly_zero_for_100_steps_with_the_passes_on() {
    let params = init_params(&ChainMlp, 50);
    let mask = every_third_masked(&params);
    let (x_shape, x) = one_hot(30, 2, 7, 51);
    let labels =
        x.chunks(14).map(|ex| (ex.iter().position(|&v| v == 1.0).unwrap() % 7) as u32).collect();
    let split =
        Split { x: HostTensor::new(x_shape, x), y: Targets::Classes { labels, n_classes: 7 } };
    let before = REWRITES.with(Cell::get);
    let mut cfg = OptimizerConfig::paper_adamw();
    cfg.lr = 1e-2;
    let spec = StepSpec {
        loss: LossKind::CrossEntropy,
        precision: LossPrecision::F32,
        optimizer: cfg,
        batch_size: 30,
        device: Device::Cpu,
    };
    let mut s = TrainingSession::new(&ChainMlp, params, Some(mask.clone()), &spec, &split).unwrap();
    assert!(REWRITES.with(Cell::get) >= before + 2, "both chains of the step graph are rewritten");
    train_100_steps_masked(&mut s, &split, &mask);
}

#[test]
fn inputs_that_are_not_one_hot_are_refused_by_a_token_session() {
    let params = init_params(&ChainMlp, 52);
    let (x_shape, x) = one_hot(8, 2, 7, 53);
    let split = Split {
        x: HostTensor::new(x_shape.clone(), x.clone()),
        y: Targets::Classes { labels: vec![0; 8], n_classes: 7 },
    };
    let mut s = TrainingSession::new(&ChainMlp, params, None, &StepSpec::paper(8), &split).unwrap();
    let mut dense = x;
    dense[3] = 0.5;
    let bad = Split { x: HostTensor::new(x_shape, dense), ..split };
    let err = s.set_batch(&bad).unwrap_err().to_string();
    assert!(err.contains("one-hot"), "{err}");
}

/// `relu(x · W1^T) · W2^T`, wide enough for its products to reach the sparse loop.
struct WideMlp;

impl Architecture for WideMlp {
    fn parameters(&self) -> Vec<ParamDef> {
        vec![def("W1", vec![48, 32]), def("W2", vec![5, 48])]
    }

    fn forward(
        &self,
        g: &mut GraphBuilder,
        p: &std::collections::BTreeMap<String, Var>,
        x: Var,
    ) -> ticketlab_api::Result<Var> {
        let w1 = g.transpose(p["W1"])?;
        let pre = g.matmul(x, w1)?;
        let hidden = g.relu(pre)?;
        let w2 = g.transpose(p["W2"])?;
        g.matmul(hidden, w2)
    }
}

/// A mask that keeps one weight in ten: the masked weights are operands of the sparse loop.
#[test]
fn weights_masked_to_a_tenth_train_through_the_sparse_loop_and_stay_zero() {
    let params = init_params(&WideMlp, 60);
    let mask: MaskSet = params
        .iter()
        .map(|(name, t)| {
            let keep = (0..t.len()).map(|i| if i % 10 == 0 { 1.0 } else { 0.0 }).collect();
            (name.clone(), HostTensor::new(t.shape.clone(), keep))
        })
        .collect();
    let n = 64;
    let x = random(&[n, 32], 61, -1.0, 1.0);
    let labels =
        x.chunks(32).map(|row| u32::from(row[0] > 0.0) + u32::from(row[5] > 0.0)).collect();
    let split =
        Split { x: HostTensor::new(vec![n, 32], x), y: Targets::Classes { labels, n_classes: 5 } };
    let mut cfg = OptimizerConfig::paper_adamw();
    cfg.lr = 1e-2;
    let spec = StepSpec {
        loss: LossKind::CrossEntropy,
        precision: LossPrecision::F32,
        optimizer: cfg,
        batch_size: n,
        device: Device::Cpu,
    };
    let before = kernels::cpu::SPARSE_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed);
    let mut s = TrainingSession::new(&WideMlp, params, Some(mask.clone()), &spec, &split).unwrap();
    train_100_steps_masked(&mut s, &split, &mask);
    let sparse = kernels::cpu::SPARSE_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed) - before;
    // Each step multiplies by both masked weights forward and by W2 backward.
    assert!(sparse >= 300, "{sparse} sparse products in 100 steps");
}
