//! Contractions (`Mul -> SumReduce`) as products: strided GEMM calls ([`super::gemm`]), or loops
//! over the non-zeros of a mostly-zero operand ([`super::sparse`]).

use std::collections::HashSet;

use luminal::compiler_utils::{Compiler, ToIdsMut, move_outgoing_edge, move_references};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, InputTensor, Operator};
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::visit::EdgeRef;
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use crate::profile::{self, Part};
use ticketlab_api::tensor::graph::view_dims;

use super::gemm::{Gemm, SMALL_PRODUCT, SharedOut, Strided, small_batch};
use super::sparse;
use super::views::{Axis, axes_of, logical_shape, vec_of};

/// `C[.., M, N] = sum_K A[.., M, K] B[.., K, N]` over arbitrary strided views of the Mul's
/// operands, where `axis` is the contracted axis of the Mul's logical shape.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sgemm {
    axis: usize,
    /// Where each element of the output lies: a stride per output axis (the logical shape
    /// without `axis`), or `None` for row-major ([`ProductLayoutPass`]).
    out_strides: Option<Vec<isize>>,
}

/// Axis roles in a contraction.
struct ContractionPlan {
    m: Option<usize>,
    n: Option<usize>,
    batch: Vec<usize>,
}

/// Classifies the axes of a Mul's logical shape; `None` if it is not a plain contraction.
fn plan_contraction(a: &[Axis], b: &[Axis], k: usize) -> Option<ContractionPlan> {
    if a.iter().chain(b).any(|x| x.checked) || a[k].stride == 0 || b[k].stride == 0 {
        return None;
    }
    let mut plan = ContractionPlan { m: None, n: None, batch: Vec::new() };
    for i in (0..a.len()).filter(|&i| i != k) {
        match (a[i].stride != 0 || a[i].size == 1, b[i].stride != 0 || b[i].size == 1) {
            (true, false) if plan.m.is_none() => plan.m = Some(i),
            (false, true) if plan.n.is_none() => plan.n = Some(i),
            (true, true) => plan.batch.push(i),
            _ => return None,
        }
    }
    Some(plan)
}

impl Operator for Sgemm {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let (va, vb) = (axes_of(&inp[0].1), axes_of(&inp[1].1));
        let shape = logical_shape(&inp[0].1);
        let plan = plan_contraction(&va, &vb, self.axis).expect("checked when compiled");
        let (a, b) = (vec_of(&inp[0].0), vec_of(&inp[1].0));
        // Output: the logical shape without the contracted axis, row-major unless the product
        // writes another layout.
        let out_axes: Vec<usize> = (0..shape.len()).filter(|&i| i != self.axis).collect();
        let out_shape: Vec<usize> = out_axes.iter().map(|&i| shape[i]).collect();
        let mut out_strides = vec![0isize; shape.len()];
        let layout = self.out_strides.clone().unwrap_or_else(|| row_major_strides(&out_shape));
        debug_assert_eq!(layout.len(), out_axes.len(), "a stride per output axis");
        for (&i, stride) in out_axes.iter().zip(layout) {
            out_strides[i] = stride;
        }
        let total: usize = out_shape.iter().product();
        let size = |ax: Option<usize>| ax.map_or(1, |i| shape[i]);
        let stride = |v: &[Axis], ax: Option<usize>| ax.map_or(0, |i| v[i].stride);
        let (m, n, k) = (size(plan.m), size(plan.n), shape[self.axis]);
        let batches: usize = plan.batch.iter().map(|&i| shape[i]).product();
        // Slices that start past 0 (within bounds) shift each operand's first element.
        let start = |v: &[Axis]| -> isize { v.iter().map(|x| x.offset * x.stride).sum() };
        let (start_a, start_b) = (start(&va), start(&vb));
        let mut idx = vec![0usize; plan.batch.len()];
        let mut gemms = Vec::with_capacity(batches);
        for _ in 0..batches {
            let offset = |strides: &dyn Fn(usize) -> isize| -> isize {
                plan.batch.iter().zip(&idx).map(|(&ax, &j)| strides(ax) * j as isize).sum()
            };
            let (oa, ob, oc) = (
                start_a + offset(&|i| va[i].stride),
                start_b + offset(&|i| vb[i].stride),
                offset(&|i| out_strides[i]),
            );
            gemms.push(Gemm {
                m,
                k,
                n,
                a: Strided { offset: oa, rows: stride(&va, plan.m), cols: va[self.axis].stride },
                b: Strided { offset: ob, rows: vb[self.axis].stride, cols: stride(&vb, plan.n) },
                c: Strided {
                    offset: oc,
                    rows: plan.m.map_or(0, |i| out_strides[i]),
                    cols: plan.n.map_or(0, |i| out_strides[i]),
                },
            });
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[plan.batch[d]] {
                    break;
                }
                idx[d] = 0;
            }
        }
        let threads = crate::kernels::threads();
        let dense_flops = 2.0 * (m * n * k) as f64;
        if m * n * k <= SMALL_PRODUCT {
            profile::note_product(Part::SmallProducts, dense_flops * batches as f64);
            return vec![Tensor::new(small_batch(threads, &gemms, a, b, total))];
        }
        if let [g] = gemms[..] {
            let mut out: Vec<f32> = Vec::new();
            match sparse::product(&g, threads, a, b, total, &mut out) {
                Some(flops) => profile::note_product(Part::SparseProduct, flops),
                None => {
                    profile::note_product(Part::DenseProduct, dense_flops);
                    out = g.dense_alone(threads, a, b, total);
                }
            }
            return vec![Tensor::new(out)];
        }
        let mut out = vec![0.0f32; total];
        // A batch profiles as zero-skipping when every entry skipped zeros, else as dense.
        let (mut flops, mut all_sparse) = (0.0, true);
        for g in &gemms {
            match sparse::product(g, threads, a, b, total, &mut out) {
                Some(done) => flops += done,
                None => {
                    g.dense_on(threads, a, b, SharedOut(out.as_mut_ptr()));
                    (flops, all_sparse) = (flops + dense_flops, false);
                }
            }
        }
        let part = if all_sparse { Part::SparseProduct } else { Part::DenseProduct };
        profile::note_product(part, flops);
        vec![Tensor::new(out)]
    }
}

/// Fuses `Mul -> SumReduce` contractions into [`Sgemm`].
#[derive(Debug, Default)]
pub struct ContractionPass;

impl Compiler for ContractionPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let nodes: Vec<NodeIndex> = graph.graph.node_indices().collect();
        for sum in nodes {
            // Ids are reused, so a product's Mul may come after its SumReduce and be gone.
            let Some(op::SumReduce(axis)) = graph
                .graph
                .node_weight(sum)
                .and_then(|op| op.as_any().downcast_ref::<op::SumReduce>().cloned())
            else {
                continue;
            };
            let Some(edge) = graph.graph.edges_directed(sum, Direction::Incoming).next() else {
                continue;
            };
            let mul = edge.source();
            let Some((_, _, sum_view)) = edge.weight().as_data() else { continue };
            let mul_consumers = graph.graph.edges_directed(mul, Direction::Outgoing).count();
            if !graph.graph[mul].as_any().is::<op::Mul>()
                || mul_consumers != 1
                || graph.no_delete.contains(&mul)
                || !ticketlab_api::tensor::graph::is_plain(&sum_view)
            {
                continue;
            }
            let mut inputs: Vec<(u8, NodeIndex, u8, ShapeTracker)> = graph
                .graph
                .edges_directed(mul, Direction::Incoming)
                .filter_map(|e| e.weight().as_data().map(|(i, o, v)| (i, e.source(), o, v)))
                .collect();
            inputs.sort_by_key(|x| x.0);
            let (va, vb) = (axes_of(&inputs[0].3), axes_of(&inputs[1].3));
            // Without an M or an N axis it is a batch of dot products (e.g. the loss's
            // sum(log_softmax * targets) per example): one sgemm call per dot product would
            // cost more than the strided multiply and reduce.
            if plan_contraction(&va, &vb, axis).is_none_or(|p| p.m.is_none() && p.n.is_none()) {
                continue;
            }
            let fused = graph
                .add_op(Sgemm { axis, out_strides: None })
                .input(inputs[0].1, inputs[0].2, inputs[0].3)
                .input(inputs[1].1, inputs[1].2, inputs[1].3)
                .finish();
            move_outgoing_edge(sum, fused, &mut graph.graph);
            move_references(&mut remap, &mut graph.no_delete, &mut graph.to_retrieve, sum, fused);
            graph.graph.remove_node(sum);
            graph.graph.remove_node(mul);
        }
    }
}

/// The strides of a row-major buffer of `shape`.
fn row_major_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for (stride, &size) in strides.iter_mut().zip(shape).rev() {
        *stride = acc;
        acc *= size as isize;
    }
    strides
}

/// Makes a product whose only reader is a copy into another axis order (a weight's gradient,
/// computed as `dW^T` and made contiguous as `dW` for the optimizer) write that order itself,
/// and removes the copy. Each element is the same sum as before (sgemm and the other product
/// loops take any output strides), written where the copy would have put it.
#[derive(Debug, Default)]
pub struct ProductLayoutPass;

impl Compiler for ProductLayoutPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let held = super::held(graph, &mut remap);
        let copies: Vec<NodeIndex> = graph
            .graph
            .node_indices()
            .filter(|&n| graph.graph[n].as_any().is::<op::Contiguous>())
            .collect();
        for copy in copies {
            let Some((product, strides)) = permuted_product(graph, copy, &held) else { continue };
            let sgemm = graph.graph[product]
                .as_any_mut()
                .downcast_mut::<Sgemm>()
                .expect("checked by permuted_product");
            sgemm.out_strides = Some(strides);
            move_outgoing_edge(copy, product, &mut graph.graph);
            move_references(
                &mut remap,
                &mut graph.no_delete,
                &mut graph.to_retrieve,
                copy,
                product,
            );
            graph.graph.remove_node(copy);
        }
    }
}

/// The product `copy` reads and the strides that write it in the copy's order, when the copy
/// is the product's only reader and reads all of it, in any order of its axes (the identity
/// too: the copy is then only removed), without broadcasts.
fn permuted_product(
    graph: &Graph,
    copy: NodeIndex,
    held: &HashSet<NodeIndex>,
) -> Option<(NodeIndex, Vec<isize>)> {
    let mut inputs = graph.graph.edges_directed(copy, Direction::Incoming);
    let edge = inputs.next()?;
    let (_, 0, view) = edge.weight().as_data()? else { return None };
    let product = edge.source();
    let sgemm = graph.graph[product].as_any().downcast_ref::<Sgemm>()?;
    let only_reader = graph.graph.edges_directed(product, Direction::Outgoing).count() == 1;
    // A schedule (ordering) edge into the product is left alone, as the other passes do.
    let only_data_inputs = graph
        .graph
        .edges_directed(product, Direction::Incoming)
        .all(|e| e.weight().as_data().is_some());
    if inputs.next().is_some()
        || !only_reader
        || !only_data_inputs
        || held.contains(&product)
        || sgemm.out_strides.is_some()
        || view.fake.iter().any(|&fake| fake)
        || view.is_padded()
        || view.is_sliced()
    {
        return None;
    }
    let (_, _, mul_view) = graph
        .graph
        .edges_directed(product, Direction::Incoming)
        .find_map(|e| e.weight().as_data().filter(|(i, _, _)| *i == 0))?;
    let mut out_shape = logical_shape(&mul_view);
    out_shape.remove(sgemm.axis);
    let dims: Vec<usize> = view.dims.iter().map(|d| d.to_usize()).collect::<Option<_>>()?;
    if dims != out_shape {
        return None;
    }
    // Logical axis q of the copy is the product's axis `indexes[q]`.
    let copy_strides = row_major_strides(&view_dims(&view));
    let mut strides = vec![0isize; dims.len()];
    for (&axis, stride) in view.indexes.iter().zip(copy_strides) {
        strides[axis] = stride;
    }
    Some((product, strides))
}
