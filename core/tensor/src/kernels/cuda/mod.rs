//! The CUDA backend (feature `cuda`): luminal_cuda's compiler, after [`CanonicalProducts`] puts
//! the gradients' products in the one layout it hands to cuBLAS. Inputs and outputs stay host
//! buffers; its copy pass moves them to and from the device.

mod canonical;

pub use canonical::CanonicalProducts;

#[cfg(feature = "cuda")]
use luminal::graph::{Graph, NodeIndex};

/// Checks that the CUDA driver starts and sees a device, before anything is compiled for it:
/// luminal_cuda unwraps its driver calls, so without a usable GPU the first graph would panic.
#[cfg(feature = "cuda")]
pub(super) fn check() -> Result<(), String> {
    use luminal_cudarc::driver::result;
    // Not `CudaDevice::count`, which unwraps the driver's start. And not the error's Display,
    // which asks the driver for its text and panics when that fails too.
    match result::init().and_then(|()| result::device::get_count()) {
        Ok(0) => Err("the CUDA driver sees no GPU on this machine".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("the CUDA driver did not start ({:?})", e.0)),
    }
}

/// Runs the CUDA passes on `graph`.
#[cfg(feature = "cuda")]
pub(super) fn compile(graph: &mut Graph, ids: &mut Vec<&mut NodeIndex>) {
    graph.compile(
        (super::RemoveDeadNodes, CanonicalProducts, luminal_cuda::CudaCompiler::<f32>::default()),
        &mut *ids,
    )
}
