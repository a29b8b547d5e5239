//! The CUDA backend (feature `cuda`): luminal_cuda's compiler, after [`CanonicalProducts`] puts
//! the gradients' products in the one layout it hands to cuBLAS. Inputs and outputs stay host
//! buffers; its copy pass moves them to and from the device.

mod canonical;

pub use canonical::CanonicalProducts;

#[cfg(feature = "cuda")]
use luminal::graph::{Graph, NodeIndex};

/// Runs the CUDA passes on `graph`.
#[cfg(feature = "cuda")]
pub(super) fn compile(graph: &mut Graph, ids: &mut Vec<&mut NodeIndex>) {
    graph.compile(
        (super::RemoveDeadNodes, CanonicalProducts, luminal_cuda::CudaCompiler::<f32>::default()),
        &mut *ids,
    )
}
