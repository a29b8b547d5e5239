//! CPU kernels as luminal compiler passes.
//!
//! luminal's stock `CPUCompiler` is both slow (every element goes through a symbolic index
//! interpreter; its 2-D matmul pattern never fires) and wrong for some ops, so it is never
//! used. [`compile`] runs our passes instead:
//!
//! - [`RemoveDeadNodes`]: drops branches nobody reads (luminal runs every node).
//! - [`ContractionPass`]: every `Mul -> SumReduce` contraction with a row or a column axis
//!   (forward and backward layouts, any batch axes, transposes as strides) becomes one strided
//!   `matrixmultiply::sgemm` call per batch entry, or a loop over the non-zeros when one operand
//!   is mostly zeros (module `sparse`: one-hot inputs, MNIST's digits, and their transposes). Large
//!   products are split over the kernel threads, on helpers that stay awake between the
//!   products of a step (module `team`).
//! - [`FusionPass`]: connected elementwise ops whose intermediates nobody else reads (a ReLU,
//!   the log-softmax chain, a mask multiply and its gradient) become one node that evaluates
//!   them chunk by chunk without allocating the intermediates.
//! - [`StridedPass`]: the remaining binary ops, reductions and copies become strided loops that
//!   read views directly (broadcasts as stride 0, slices and pads as bounds), with adjacent axes
//!   coalesced and a plain slice loop whenever every operand is contiguous.
//!
//! A session of several arms then runs [`ArmPass`] ([`arm`]): each node that depends on a weight
//! runs its kernel once per arm, so one graph trains many networks of the same shapes.
//!
//! On CUDA, [`compile`] runs luminal_cuda's compiler after `CanonicalProducts`, which puts the
//! gradients' products in the layout that compiler hands to cuBLAS.
//!
//! Unary ops left unfused keep luminal's implementation: the builder guarantees their inputs are
//! contiguous, and luminal maps the buffer in place.

mod arms;
#[cfg(any(feature = "cuda", test))]
mod canonical;
mod fuse;
mod sgemm;
mod sparse;
mod strided;
mod team;
mod tokens;
pub(crate) mod views;

use std::sync::atomic::{AtomicUsize, Ordering};

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::{Graph, NodeIndex};
use luminal::prelude::petgraph::Direction;

pub use arms::{ArmPass, PerArm};
#[cfg(any(feature = "cuda", test))]
pub use canonical::CanonicalProducts;
pub use fuse::FusionPass;
pub use sgemm::ContractionPass;
#[cfg(test)]
pub(crate) use sparse::SPARSE_PRODUCTS;
pub use strided::StridedPass;
pub use tokens::{TokenLeaves, TokenPass};

/// Threads of the matrix kernels; 0 until [`set_threads`] is called.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads a large matrix product is split over (rows or columns of the result,
/// never a sum, so every thread count gives the same numbers).
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

thread_local! {
    /// This thread's own thread count ([`with_threads`]); 0 when it has none.
    static HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `f` with this thread's matrix products split over `n` threads, whatever
/// [`set_threads`] said. The executor gives a batch of arms the threads of every worker it
/// holds; the shares of a batch, already split over the threads, keep their products on their
/// own thread (`n` = 1), where splitting each product again would only make the threads wait
/// for each other.
pub fn with_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    /// Restores the count, also when `f` unwinds.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            HERE.set(self.0);
        }
    }
    let _restore = Restore(HERE.replace(n.max(1)));
    f()
}

/// The threads a large matrix product is split over: as [`with_threads`] said on this
/// thread, else as [`set_threads`] said, else `MATMUL_NUM_THREADS`, else 1.
pub fn threads() -> usize {
    let here = HERE.get();
    if here > 0 {
        return here;
    }
    match THREADS.load(Ordering::Relaxed) {
        0 => std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(1),
        n => n,
    }
}

/// Where compiled graphs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Our CPU kernels.
    Cpu,
    /// luminal_cuda's compiler (feature `cuda`): inputs and outputs stay host buffers; its
    /// copy pass moves them to and from the device.
    Cuda,
}

impl Device {
    /// `TICKETLAB_BACKEND=cuda` selects CUDA (with the `cuda` feature); the default is CPU.
    pub fn from_env() -> Self {
        match std::env::var("TICKETLAB_BACKEND").as_deref() {
            Ok("cuda") if cfg!(feature = "cuda") => Device::Cuda,
            _ => Device::Cpu,
        }
    }

    /// The name recorded in manifests and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// Runs every kernel pass of the selected [`Device`] on `graph`, keeping `remap`'s node ids
/// valid.
///
/// With `tokens`, products with that one-hot leaf become gathers and scatter-adds
/// ([`TokenPass`]); both of its leaves are kept, since the session feeds them.
pub fn compile(graph: &mut Graph, remap: &mut [NodeIndex], tokens: Option<TokenLeaves>) {
    let mut leaves: Vec<NodeIndex> = tokens.iter().flat_map(|t| [t.one_hot, t.indices]).collect();
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().chain(leaves.iter_mut()).collect();
    match Device::from_env() {
        // Dead-node removal runs again after fusion, for the constants fusion folded away.
        Device::Cpu => {
            if let Some(t) = tokens {
                graph.compile(TokenPass(t), &mut ids);
            }
            graph.compile(
                (RemoveDeadNodes, ContractionPass, FusionPass, RemoveDeadNodes, StridedPass),
                &mut ids,
            )
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => graph.compile(
            (RemoveDeadNodes, CanonicalProducts, luminal_cuda::CudaCompiler::<f32>::default()),
            &mut ids,
        ),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => unreachable!("Device::from_env selects CUDA only with the `cuda` feature"),
    }
}

/// Makes `graph` (compiled by [`compile`]) run `arms` networks at once: every node that depends
/// on one of `leaves` computes one value per arm ([`ArmPass`]). Each of those leaves must then
/// hold a [`PerArm`] value, and each output that depends on them is one.
pub fn arm(graph: &mut Graph, remap: &mut [NodeIndex], leaves: Vec<NodeIndex>, arms: usize) {
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().collect();
    graph.compile(ArmPass { leaves, arms }, &mut ids);
}

/// [`compile`] without [`FusionPass`], to check that fusion changes no result.
#[cfg(test)]
pub(crate) fn compile_unfused(graph: &mut Graph, remap: &mut [NodeIndex]) {
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().collect();
    graph.compile((RemoveDeadNodes, ContractionPass, StridedPass), &mut ids);
}

/// Removes nodes whose output nobody reads: luminal executes every node in the graph, kept or
/// not, so an unused branch would cost a full computation per step.
///
/// Input leaves stay even when nothing reads them: their callers set data on them after
/// compiling, and a removed node's index is reused by the nodes later passes add, so data set
/// on a removed leaf would land on (and silently replace) another node's output.
#[derive(Debug, Default)]
pub struct RemoveDeadNodes;

impl Compiler for RemoveDeadNodes {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let held: std::collections::HashSet<NodeIndex> =
            remap.to_ids_mut().into_iter().map(|id| *id).collect();
        loop {
            let dead: Vec<NodeIndex> = graph
                .graph
                .node_indices()
                .filter(|&n| {
                    graph.graph.edges_directed(n, Direction::Outgoing).next().is_none()
                        && !graph.graph[n].as_any().is::<luminal::op::Function>()
                        && !graph.no_delete.contains(&n)
                        && !graph.to_retrieve.contains(&n)
                        && !held.contains(&n)
                })
                .collect();
            if dead.is_empty() {
                break;
            }
            for n in dead {
                graph.graph.remove_node(n);
            }
        }
    }
}
