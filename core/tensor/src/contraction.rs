//! Matrix products as luminal sees them: a `Mul` of two broadcast views followed by a
//! `SumReduce` over the shared axis. The graph passes that change how products are computed
//! (reassociation of chains, token gathers) recognise them here, in one place.

use luminal::graph::{Graph, NodeIndex};
use luminal::op;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::visit::EdgeRef;

use crate::kernels::cpu::views::axes_of;
use ticketlab_api::tensor::graph::is_plain;

/// One operand of a product: element `(i, j)` of the `rows x cols` matrix is element
/// `i * row_stride + j * col_stride` of `node`'s output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operand {
    pub(crate) node: NodeIndex,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl Operand {
    /// The same buffer read as the transposed matrix.
    pub(crate) fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether the matrix is the node's whole buffer in row-major order.
    pub(crate) fn is_row_major(&self) -> bool {
        (self.col_stride == 1 || self.cols == 1) && (self.row_stride == self.cols || self.rows == 1)
    }
}

/// A product `lhs · rhs` whose result is the buffer of `sum`, `[lhs.rows, rhs.cols]`
/// row-major. `mul` is the elementwise product that `sum` reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Product {
    pub(crate) sum: NodeIndex,
    pub(crate) mul: NodeIndex,
    pub(crate) lhs: Operand,
    pub(crate) rhs: Operand,
}

impl Product {
    /// Multiply-adds of computing it densely.
    pub(crate) fn cost(&self) -> usize {
        self.lhs.rows * self.lhs.cols * self.rhs.cols
    }
}

/// The data inputs of `node` in input order: (source, its edge view).
pub(crate) fn data_inputs(
    graph: &Graph,
    node: NodeIndex,
) -> Vec<(NodeIndex, luminal::shape::ShapeTracker)> {
    let mut edges: Vec<_> = graph
        .graph
        .edges_directed(node, Direction::Incoming)
        .filter_map(|e| {
            e.weight().as_data().map(|(input, output, view)| (input, output, e.source(), view))
        })
        .filter(|(_, output, _, _)| *output == 0)
        .collect();
    edges.sort_by_key(|(input, ..)| *input);
    edges.into_iter().map(|(_, _, source, view)| (source, view)).collect()
}

/// The number of edges leaving `node`.
pub(crate) fn consumers(graph: &Graph, node: NodeIndex) -> usize {
    graph.graph.edges_directed(node, Direction::Outgoing).count()
}

/// Where a product lies in the three axes of its `Mul`: input 0 is the lhs, input 1 the rhs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProductAxes {
    pub(crate) sum: NodeIndex,
    pub(crate) mul: NodeIndex,
    /// The reduced axis, shared by both operands.
    pub(crate) k: usize,
    /// The lhs's row axis, along which the rhs is broadcast.
    pub(crate) m: usize,
    /// The rhs's column axis, along which the lhs is broadcast.
    pub(crate) n: usize,
}

/// `sum` as a product of two matrices, if it is one: a `SumReduce` over a three-axis `Mul`
/// read by nobody else, in which one operand is broadcast along one free axis and the other
/// along the other, and neither view is sliced or padded. Batched products (more axes) are
/// not matched.
pub(crate) fn product_axes(graph: &Graph, sum: NodeIndex) -> Option<ProductAxes> {
    let op::SumReduce(k) =
        *graph.graph.node_weight(sum)?.as_any().downcast_ref::<op::SumReduce>()?;
    let [(mul, sum_view)] = data_inputs(graph, sum)[..] else { return None };
    if !graph.graph[mul].as_any().is::<op::Mul>()
        || !is_plain(&sum_view)
        || consumers(graph, mul) != 1
        || graph.no_delete.contains(&mul)
    {
        return None;
    }
    let [(_, a_view), (_, b_view)] = data_inputs(graph, mul)[..] else { return None };
    let (a, b) = (axes_of(&a_view), axes_of(&b_view));
    if a.len() != 3
        || a.iter().chain(&b).any(|x| x.checked || x.offset != 0 || x.stride < 0)
        || a[k].stride == 0
        || b[k].stride == 0
    {
        return None;
    }
    let free: Vec<usize> = (0..3).filter(|&i| i != k).collect();
    let (m, n) = match (
        a[free[0]].stride == 0,
        b[free[0]].stride == 0,
        a[free[1]].stride == 0,
        b[free[1]].stride == 0,
    ) {
        (false, true, true, false) => (free[0], free[1]),
        (true, false, false, true) => (free[1], free[0]),
        _ => return None,
    };
    Some(ProductAxes { sum, mul, k, m, n })
}

/// `sum` as a product of two matrices ([`product_axes`]), with its operands' strides.
pub(crate) fn product(graph: &Graph, sum: NodeIndex) -> Option<Product> {
    let ProductAxes { sum, mul, k, m, n } = product_axes(graph, sum)?;
    let [(a_node, a_view), (b_node, b_view)] = data_inputs(graph, mul)[..] else { return None };
    let (a, b) = (axes_of(&a_view), axes_of(&b_view));
    let stride = |s: isize| s as usize;
    let lhs = Operand {
        node: a_node,
        rows: a[m].size,
        cols: a[k].size,
        row_stride: stride(a[m].stride),
        col_stride: stride(a[k].stride),
    };
    let rhs = Operand {
        node: b_node,
        rows: b[k].size,
        cols: b[n].size,
        row_stride: stride(b[k].stride),
        col_stride: stride(b[n].stride),
    };
    // The reduced output keeps the Mul's axis order: `[M, N]` if M comes first, else `[N, M]`.
    Some(if m < n {
        Product { sum, mul, lhs, rhs }
    } else {
        Product { sum, mul, lhs: rhs.transposed(), rhs: lhs.transposed() }
    })
}
