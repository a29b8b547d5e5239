//! [`CanonicalProducts`] against the graph left as built: afterwards luminal_cuda's matmul
//! selector (luminal's pattern matcher with luminal_cuda's shapes and fakes) finds every product
//! of a training step, and the graph computes the same numbers bit for bit, both as luminal
//! runs it uncompiled and compiled with our kernels.

use luminal::compiler_utils::{SelectEdge, SelectOp};
use luminal::graph::{Graph, NodeIndex};
use luminal::op;
use luminal::tensor::Tensor;

use super::CanonicalProducts;
use crate::contraction::product_axes;
use crate::tests::{random, weighted_sum};
use crate::{autograd, kernels};
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::{GraphBuilder, Var};

/// `(a · b)ᵀ` as one product whose `Mul` puts the result's columns first: `[N, M, K]`, the lhs
/// broadcast along axis 0. `matmul` never builds this layout; other graphs may.
fn flipped_product(g: &mut GraphBuilder, a: Var, b: Var) -> Var {
    let (m, n) = (a.shape()[0], b.shape()[1]);
    let a = g.expand(a, 0, n).unwrap();
    let b = g.transpose(b).unwrap();
    let b = g.expand(b, 1, m).unwrap();
    let product = g.mul(a, b).unwrap();
    g.sum_reduce(product, 2).unwrap()
}

/// A training step's graph: `relu(x · W1) · W2ᵀ` and `(x · W1)ᵀ` ([`flipped_product`]) under
/// weighted sums, with the gradients of `x`, `W1` and `W2` (whose products are reduced over
/// axes 0, 1 and 2).
fn mlp_step() -> Step {
    let mut g = GraphBuilder::new();
    let shapes = [vec![5, 7], vec![7, 6], vec![4, 6]];
    let leaves: Vec<Var> =
        shapes.iter().enumerate().map(|(i, s)| g.input(&format!("in{i}"), s)).collect();
    let hidden = g.matmul(leaves[0], leaves[1]).unwrap();
    let hidden = g.relu(hidden).unwrap();
    let w2 = g.transpose(leaves[2]).unwrap();
    let out = g.matmul(hidden, w2).unwrap();
    let flipped = flipped_product(&mut g, leaves[0], leaves[1]);
    let (out, flipped) = (weighted_sum(&mut g, out, 3), weighted_sum(&mut g, flipped, 4));
    let loss = g.add(out, flipped).unwrap();
    let grads = autograd::backward(&mut g, loss, &leaves).unwrap();
    let mut ids = vec![g.contiguous_if_needed(loss).node];
    ids.extend(grads.into_iter().map(|gr| g.contiguous_if_needed(gr).node));
    for &id in &ids {
        g.cx.no_delete.insert(id);
    }
    let data = leaves
        .iter()
        .zip(&shapes)
        .zip(10..)
        .map(|((leaf, shape), seed)| (leaf.node, random(shape, seed, -1.0, 1.0)))
        .collect();
    Step { g, ids, data }
}

/// A graph to run: its builder, the ids of the loss and the gradients, each leaf with its data.
struct Step {
    g: GraphBuilder,
    ids: Vec<NodeIndex>,
    data: Vec<(NodeIndex, Vec<f32>)>,
}

/// Products as our passes see them.
fn products(graph: &Graph) -> usize {
    graph.graph.node_indices().filter(|&n| product_axes(graph, n).is_some()).count()
}

/// Products luminal_cuda's compiler would turn into cuBLAS calls: its selector, over luminal's
/// primitive ops instead of its CUDA copies of them (its compiler swaps the op types only).
fn cuda_matmuls(graph: &mut Graph) -> usize {
    let (mut mul, mut sum) = (NodeIndex::default(), NodeIndex::default());
    let mut search = SelectEdge::new(
        SelectOp::new()
            .ty::<op::Mul>()
            .shapes([['A', 'C', 'B'], ['A', 'C', 'B']])
            .fakes([[Some(false), Some(true), Some(false)], [Some(true), Some(false), Some(false)]])
            .ptr(&mut mul),
        SelectOp::new()
            .ty::<op::SumReduce>()
            .check(|o, _| o.as_any().downcast_ref::<op::SumReduce>().is_some_and(|s| s.0 == 2))
            .ptr(&mut sum),
    )
    .search(graph);
    let mut found = 0;
    while search.next_match() {
        found += 1;
    }
    found
}

/// The loss and gradients of [`mlp_step`], canonical or not, compiled with our kernels or not.
fn run(canonical: bool, compiled: bool) -> Vec<Vec<f32>> {
    let Step { mut g, mut ids, data } = mlp_step();
    if canonical {
        g.cx.compile(CanonicalProducts, ids.iter_mut().collect::<Vec<_>>());
    }
    if compiled {
        kernels::compile(&mut g.cx, &mut ids, None, Device::Cpu);
    }
    for (leaf, values) in data {
        g.cx.set_tensor(leaf, 0, Tensor::new(values));
        g.cx.no_delete.insert(leaf);
    }
    g.cx.execute();
    ids.iter()
        .map(|&id| {
            let tensor = g.cx.get_tensor_ref(id, 0).unwrap();
            tensor.data.as_any().downcast_ref::<Vec<f32>>().unwrap().clone()
        })
        .collect()
}

#[test]
fn every_product_of_a_training_step_takes_luminal_cudas_matmul_layout() {
    let Step { mut g, mut ids, .. } = mlp_step();
    let (total, nodes) = (products(&g.cx), g.cx.graph.node_count());
    // Three forward products, and two in the backward pass for each.
    assert_eq!(total, 9);
    // Only the two forward products that `matmul` built; the flipped one and every gradient's
    // product are not in luminal_cuda's layout as built.
    assert_eq!(cuda_matmuls(&mut g.cx), 2);
    g.cx.compile(CanonicalProducts, ids.iter_mut().collect::<Vec<_>>());
    assert_eq!(cuda_matmuls(&mut g.cx), total);
    assert_eq!(products(&g.cx), total);
    assert_eq!(g.cx.graph.node_count(), nodes, "the pass moves views, it adds no node");
}

#[test]
fn canonical_products_compute_the_same_numbers_bit_for_bit() {
    for compiled in [false, true] {
        let (plain, canonical) = (run(false, compiled), run(true, compiled));
        assert_eq!(plain.len(), 4);
        for (i, (a, b)) in plain.iter().zip(&canonical).enumerate() {
            let (a, b): (Vec<u32>, Vec<u32>) =
                (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
            assert_eq!(a, b, "output {i} (compiled: {compiled})");
        }
    }
}
