//! The CPU kernels, as luminal compiler passes:
//!
//! - [`ContractionPass`] ([`products`]): every `Mul -> SumReduce` contraction with a row or a
//!   column axis (forward and backward layouts, any batch axes, transposes as strides) becomes
//!   one strided `matrixmultiply::sgemm` call per batch entry ([`gemm`]), or a loop over the
//!   non-zeros when one operand is mostly zeros ([`sparse`]: one-hot inputs, MNIST's digits,
//!   and their transposes).
//! - [`FusionPass`] ([`fuse`]): connected elementwise ops whose intermediates nobody else reads
//!   (a ReLU, the log-softmax chain, a mask multiply and its gradient) become one node that
//!   evaluates them chunk by chunk without allocating the intermediates.
//! - [`StridedPass`] ([`strided`]): the remaining binary ops, reductions and copies become
//!   strided loops that read views directly ([`views`]: broadcasts as stride 0, slices and pads
//!   as bounds), with adjacent axes coalesced and a plain slice loop whenever every operand is
//!   contiguous; an unfused `exp2` becomes [`exp2`]'s vectorised loop, as a fused one is.
//! - [`TokenPass`] ([`tokens`]): products with one-hot token inputs become gathers and
//!   scatter-adds.
//!
//! Every kernel but luminal's splits large work over the kernel threads, by blocks of its
//! output, on helpers that stay awake between the kernels of a step ([`pool`]).
//!
//! Other unary ops left unfused keep luminal's implementation: the builder guarantees their
//! inputs are contiguous, and luminal maps the buffer in place. [`denormals`] sets flush-to-zero, for
//! measuring what subnormal floats cost.

pub mod denormals;
mod exp2;
mod fuse;
mod gemm;
mod pool;
mod products;
mod sparse;
mod strided;
mod tokens;
pub(crate) mod views;

use std::collections::HashSet;
use std::time::Instant;

use luminal::compiler_utils::ToIdsMut;
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, Operator};

pub use fuse::FusionPass;
pub(crate) use pool::{parts, split_pieces};
pub use products::{ContractionPass, ProductLayoutPass};
#[cfg(test)]
pub(crate) use sparse::SPARSE_PRODUCTS;
pub use strided::StridedPass;
pub use tokens::{TokenLeaves, TokenPass};

use super::RemoveDeadNodes;
use crate::profile::{Part, Peak};

/// Pieces of work (outputs of elementwise kernels, copies, reductions, gathers, the optimizer's
/// state) split over the kernel threads on this thread so far, so tests can tell that they were.
#[cfg(test)]
pub(crate) fn splits_on_this_thread() -> usize {
    pool::SPLITS.get()
}

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
        (
            RemoveDeadNodes,
            ContractionPass,
            ProductLayoutPass,
            FusionPass,
            RemoveDeadNodes,
            StridedPass,
        ),
        &mut *ids,
    )
}

/// The nodes a pass must leave in place: those `remap` names, and the kept and retrieved ones.
fn held<T: ToIdsMut>(graph: &Graph, remap: &mut T) -> HashSet<NodeIndex> {
    let mut held: HashSet<NodeIndex> = remap.to_ids_mut().into_iter().map(|id| *id).collect();
    held.extend(graph.no_delete.iter().chain(&graph.to_retrieve).copied());
    held
}

/// The [`Part`] of a profile a compiled CPU kernel's time belongs to (a product names its own
/// kind when it runs: dense, small or zero-skipping), and a short label of what it computes.
pub(super) fn describe(kernel: &dyn Operator) -> (Part, String) {
    let any = kernel.as_any();
    let part = if any.is::<tokens::GatherRows>() || any.is::<tokens::ScatterAddRows>() {
        Part::GatherScatter
    } else if any.is::<strided::StridedReduce>()
        || any.is::<op::SumReduce>()
        || any.is::<op::MaxReduce>()
    {
        Part::Reduction
    } else if any.is::<strided::StridedCopy>() || any.is::<op::Contiguous>() {
        Part::Copy
    } else if any.is::<products::Sgemm>() {
        Part::DenseProduct
    } else {
        Part::Elementwise
    };
    let label = match any.downcast_ref::<fuse::FusedElementwise>() {
        Some(fused) => fused.describe(),
        None => {
            let debug = format!("{kernel:?}");
            debug.split([' ', '{']).next().unwrap_or_default().to_string()
        }
    };
    (part, label)
}

/// Measures this machine's [`Peak`] with `threads` kernel threads: the best of four runs of a
/// `1024 x 1024` by `1024 x 1024` product through the engine's dense product kernel, of a
/// 256 MiB memory copy, and (with more than one thread) of 10,000 hand-offs between two threads.
pub fn machine_peak(threads: usize) -> Peak {
    const N: usize = 1024;
    const COPY_FLOATS: usize = 1 << 26;
    let a: Vec<f32> = (0..N * N).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..N * N).map(|i| (i % 5) as f32 * 0.5).collect();
    let row_major = gemm::Strided { offset: 0, rows: N as isize, cols: 1 };
    let product = gemm::Gemm { m: N, k: N, n: N, a: row_major, b: row_major, c: row_major };
    let sgemm = super::with_threads(threads, || {
        best_of_four(|| {
            std::hint::black_box(product.dense_alone(super::threads(), &a, &b, N * N));
        })
    });
    let source = vec![1.0f32; COPY_FLOATS];
    let mut target = vec![0.0f32; COPY_FLOATS];
    let copy = best_of_four(|| {
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&target);
    });
    let copy_bytes = COPY_FLOATS * 4;
    Peak {
        sgemm_gflops: 2.0 * (N * N * N) as f64 / sgemm / 1e9,
        sgemm_n: N,
        copy_gb_per_s: 2.0 * copy_bytes as f64 / copy / 1e9,
        copy_bytes,
        handoff_round_trip_ns: (threads > 1).then(handoff_round_trip_ns),
    }
}

/// The fewest nanoseconds, in four runs of 10,000, that a value takes from this thread to
/// another and back, each side spinning on one atomic counter (yielding its core now and then,
/// in case the other side waits for it).
fn handoff_round_trip_ns() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const TRIPS: u64 = 10_000;
    let counter = AtomicU64::new(0);
    // Waits until the counter holds `value`.
    let wait = |value: u64| {
        let mut spins = 0u32;
        while counter.load(Ordering::Acquire) != value {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 12) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    let mut best = f64::MAX;
    for run in 0..4 {
        let first = run * 2 * TRIPS;
        counter.store(first, Ordering::Release);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for trip in 0..TRIPS {
                    wait(first + 2 * trip + 1);
                    counter.store(first + 2 * trip + 2, Ordering::Release);
                }
            });
            let start = Instant::now();
            for trip in 0..TRIPS {
                counter.store(first + 2 * trip + 1, Ordering::Release);
                wait(first + 2 * trip + 2);
            }
            best = best.min(start.elapsed().as_secs_f64() * 1e9 / TRIPS as f64);
        });
    }
    best
}

/// The fewest seconds `work` took in four runs.
fn best_of_four(mut work: impl FnMut()) -> f64 {
    (0..4)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}
