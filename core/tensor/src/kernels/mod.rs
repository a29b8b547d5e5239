//! Kernels: the compiler passes that turn a luminal graph into what runs, one folder per
//! backend.
//!
//! - [`cpu`]: our CPU kernels. luminal's stock `CPUCompiler` is both slow (every element goes
//!   through a symbolic index interpreter; its 2-D matmul pattern never fires) and wrong for some
//!   ops, so it is never used.
//! - `cuda` (feature `cuda`): luminal_cuda's compiler, after `CanonicalProducts` puts the
//!   gradients' products in the layout that compiler hands to cuBLAS.
//! - Backend-neutral: [`RemoveDeadNodes`], and [`ArmPass`] ([`arm`]), which makes each node that
//!   depends on a weight run its kernel once per arm, so one graph trains many networks of the
//!   same shapes.
//!
//! [`compile`] runs the passes of the [`Device`] it is given; a new backend is a folder here and
//! an arm of its `match`.

mod arms;
pub mod cpu;
#[cfg(any(feature = "cuda", test))]
mod cuda;
mod timed;
mod tuner;

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::{Graph, NodeIndex};
use luminal::prelude::petgraph::Direction;
use ticketlab_api::runtime::Device;

pub use arms::{ArmPass, PerArm, armed_inputs, per_arm_kernel};
pub use cpu::{TokenLeaves, TokenPass};
#[cfg(any(feature = "cuda", test))]
pub use cuda::CanonicalProducts;
pub use tuner::ThreadTuner;

thread_local! {
    /// This thread's kernel thread count ([`with_threads`]); 0 when none was set.
    static HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `f` with this thread's large kernels (products, elementwise kernels, copies,
/// reductions, gathers, optimizer updates) split over `n` threads (blocks of the result, never a
/// sum, so every count gives the same numbers). The executor runs each stage with the runtime's
/// threads (a batch of arms with those of every worker it holds); the shares of a batch, already
/// split over the threads, keep their kernels on their own thread (`n` = 1), where splitting
/// each kernel again would only make the threads wait for each other.
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

/// The threads a large kernel on this thread is split over: as [`with_threads`] said, else 1.
pub fn threads() -> usize {
    HERE.get().max(1)
}

/// The device `TICKETLAB_BACKEND` names (`cpu`, the default, or `cuda` in a build with the
/// `cuda` feature and a GPU), checked to run here; the error names the variable, its value and
/// the fix.
pub fn requested_device() -> Result<Device, String> {
    let Ok(name) = std::env::var("TICKETLAB_BACKEND") else { return Ok(Device::Cpu) };
    let device = Device::parse(&name)
        .ok_or_else(|| format!("TICKETLAB_BACKEND={name}: unknown device; use cpu or cuda"))?;
    check(device).map_err(|why| format!("TICKETLAB_BACKEND={name}: {why}"))?;
    Ok(device)
}

/// Whether graphs compiled for `device` can run here; the error says why not and what to do.
fn check(device: Device) -> Result<(), String> {
    match device {
        Device::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        Device::Cuda => cuda::check(),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err("this ticketlab was built without CUDA; build it with \
             `cargo build --release -p ticketlab --features cuda`"
            .into()),
    }
}

/// Runs every kernel pass of `device` on `graph`, keeping `remap`'s node ids valid.
///
/// With `tokens`, products with that one-hot leaf become gathers and scatter-adds
/// ([`TokenPass`]); both of its leaves are kept, since the session feeds them. On the CPU, a
/// graph compiled while this thread records a [`crate::profile`] has its kernels timed.
pub fn compile(
    graph: &mut Graph,
    remap: &mut [NodeIndex],
    tokens: Option<TokenLeaves>,
    device: Device,
) {
    let mut leaves: Vec<NodeIndex> = tokens.iter().flat_map(|t| [t.one_hot, t.indices]).collect();
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().chain(leaves.iter_mut()).collect();
    match device {
        Device::Cpu => {
            cpu::compile(graph, &mut ids, tokens);
            if crate::profile::recording() {
                graph.compile(timed::TimedPass(cpu::describe), &mut ids);
            }
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => cuda::compile(graph, &mut ids),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => {
            unreachable!("the runtime selects CUDA only in a build with the `cuda` feature")
        }
    }
}

/// Makes `graph` (compiled by [`compile`]) run `arms` networks at once: every node that depends
/// on one of `leaves` computes one value per arm ([`ArmPass`]). Each of those leaves must then
/// hold a [`PerArm`] value, and each output that depends on them is one.
pub fn arm(graph: &mut Graph, remap: &mut [NodeIndex], leaves: Vec<NodeIndex>, arms: usize) {
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().collect();
    graph.compile(ArmPass { leaves, arms }, &mut ids);
}

/// [`compile`] on the CPU without [`cpu::FusionPass`], to check that fusion changes no result.
#[cfg(test)]
pub(crate) fn compile_unfused(graph: &mut Graph, remap: &mut [NodeIndex]) {
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().collect();
    graph.compile((RemoveDeadNodes, cpu::ContractionPass, cpu::StridedPass), &mut ids);
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
