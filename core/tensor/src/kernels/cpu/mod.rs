//! The CPU kernels, as luminal compiler passes:
//!
//! - [`ContractionPass`] ([`products`]): every `Mul -> SumReduce` contraction with a row or a
//!   column axis (forward and backward layouts, any batch axes, transposes as strides) becomes
//!   one strided `matrixmultiply::sgemm` call per batch entry ([`gemm`]), or a loop over the
//!   non-zeros when one operand is mostly zeros ([`sparse`]: one-hot inputs, MNIST's digits,
//!   and their transposes). Large products are split over the kernel threads, on helpers that
//!   stay awake between the products of a step ([`pool`]).
//! - [`FusionPass`] ([`fuse`]): connected elementwise ops whose intermediates nobody else reads
//!   (a ReLU, the log-softmax chain, a mask multiply and its gradient) become one node that
//!   evaluates them chunk by chunk without allocating the intermediates.
//! - [`StridedPass`] ([`strided`]): the remaining binary ops, reductions and copies become
//!   strided loops that read views directly ([`views`]: broadcasts as stride 0, slices and pads
//!   as bounds), with adjacent axes coalesced and a plain slice loop whenever every operand is
//!   contiguous.
//! - [`TokenPass`] ([`tokens`]): products with one-hot token inputs become gathers and
//!   scatter-adds.
//!
//! Unary ops left unfused keep luminal's implementation: the builder guarantees their inputs are
//! contiguous, and luminal maps the buffer in place. [`denormals`] sets flush-to-zero, for
//! measuring what subnormal floats cost.

pub mod denormals;
mod fuse;
mod gemm;
mod pool;
mod products;
mod sparse;
mod strided;
mod tokens;
pub(crate) mod views;

use luminal::graph::{Graph, NodeIndex};

pub use fuse::FusionPass;
pub use products::ContractionPass;
#[cfg(test)]
pub(crate) use sparse::SPARSE_PRODUCTS;
pub use strided::StridedPass;
pub use tokens::{TokenLeaves, TokenPass};

use super::RemoveDeadNodes;

/// Runs the CPU passes on `graph`: token gathers first (with `tokens`), then products, fusion
/// and strided loops. Dead-node removal runs again after fusion, for the constants fusion folded
/// away.
pub(super) fn compile(
    graph: &mut Graph,
    ids: &mut Vec<&mut NodeIndex>,
    tokens: Option<TokenLeaves>,
) {
    if let Some(t) = tokens {
        graph.compile(TokenPass(t), &mut *ids);
    }
    graph.compile(
        (RemoveDeadNodes, ContractionPass, FusionPass, RemoveDeadNodes, StridedPass),
        &mut *ids,
    )
}
