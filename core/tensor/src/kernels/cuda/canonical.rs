//! Puts every matrix product in the one layout luminal_cuda 0.2.0 hands to cuBLAS.
//!
//! luminal_cuda recognises a product only as `Mul([A, C, B] | [A, C, B]) -> SumReduce(2)`, the
//! first operand broadcast along axis 1 and the second along axis 0: the layout a forward
//! `matmul` builds. The products of the gradients come out of autograd reduced over axis 0
//! or 1, which it would run as a broadcast multiply (an `A x C x B` buffer) and a separate
//! reduction. This pass permutes both operands' views so that the reduced axis comes last,
//! swapping the operands where that keeps the result's axis order, so every product reaches
//! cuBLAS and no reader of a result changes. It moves views only: no data is copied, and the
//! function computed is the same, element by element and in the same summation order.

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::{Dependency, Graph};
use luminal::op;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::visit::EdgeRef;

use crate::contraction::{ProductAxes, product_axes};
use ticketlab_api::tensor::graph::{tracker, view_dims};

/// Rewrites every product of the graph ([`product_axes`]) into luminal_cuda's layout.
#[derive(Debug, Default)]
pub struct CanonicalProducts;

impl Compiler for CanonicalProducts {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, _: T) {
        let products: Vec<ProductAxes> =
            graph.graph.node_indices().filter_map(|n| product_axes(graph, n)).collect();
        for product in products {
            canonicalise(graph, product);
        }
    }
}

fn canonicalise(graph: &mut Graph, ProductAxes { sum, mul, k, m, n }: ProductAxes) {
    // The result's axes stay in the Mul's order ([M, N] or [N, M]); the operand broadcast along
    // the result's second axis must be input 0.
    let (order, swap) = if m < n { ([m, n, k], false) } else { ([n, m, k], true) };
    if order == [0, 1, 2] && !swap {
        return;
    }
    let operands: Vec<_> = graph
        .graph
        .edges_directed(mul, Direction::Incoming)
        .filter(|e| e.weight().as_data().is_some())
        .map(|e| e.id())
        .collect();
    let mut dims = Vec::new();
    for edge in operands {
        if let Some(Dependency::Data { input_order, shape, .. }) = graph.graph.edge_weight_mut(edge)
        {
            shape.permute(&order);
            dims = view_dims(shape);
            if swap {
                *input_order = 1 - *input_order;
            }
        }
    }
    let reduced = graph.graph.find_edge(mul, sum).expect("the Mul feeds its SumReduce");
    if let Some(Dependency::Data { shape, .. }) = graph.graph.edge_weight_mut(reduced) {
        *shape = tracker(&dims);
    }
    *graph.graph.node_weight_mut(sum).expect("the SumReduce exists") = Box::new(op::SumReduce(2));
}

#[cfg(test)]
mod tests;
