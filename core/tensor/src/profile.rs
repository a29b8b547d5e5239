//! Where a training step's time goes (`ticketlab bench --profile`): each kernel's time, the
//! floating-point operations of its products and the bytes it reads and writes, tallied by
//! [`Part`] while a thread [`record`]s; and the host's work around the graph (reading the
//! gradients out, the optimizer, a host loss) and the executor's own time between kernels.
//!
//! Recording is per thread and off unless [`record`] runs. A graph compiled while recording gets
//! a timing wrapper around every kernel ([`crate::kernels`]); outside a recording the wrapper
//! only forwards, and graphs compiled outside one have none, so training pays nothing.
//! Times are self times: a part timed inside another (a kernel inside the executor's run) is
//! subtracted from the outer one, so the parts add up to the time recorded.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// What a share of a step's time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Matrix products through packed sgemm.
    DenseProduct,
    /// Batches of products too small to pack (attention's per-example products), as loops.
    SmallProducts,
    /// Products that loop over the non-zeros of a mostly-zero operand.
    SparseProduct,
    /// Products with one-hot tokens, as gathers and scatter-adds.
    GatherScatter,
    /// Elementwise kernels: fused groups, strided binary ops, luminal's unary ops.
    Elementwise,
    /// Sums and maxima along an axis.
    Reduction,
    /// Copies that make a view contiguous.
    Copy,
    /// The executor between kernels: ordering, gathering inputs, freeing outputs.
    GraphOverhead,
    /// Taking the loss and gradients out of the graph.
    ReadOut,
    /// The loss and its gradient in f64 on the host (`loss_precision: f64`).
    HostLoss,
    /// The optimizer's update of the weights and its moments.
    Optimizer,
}

impl Part {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Part::DenseProduct => "products: dense sgemm",
            Part::SmallProducts => "products: small loops",
            Part::SparseProduct => "products: zero-skipping",
            Part::GatherScatter => "gather / scatter-add",
            Part::Elementwise => "elementwise",
            Part::Reduction => "reductions",
            Part::Copy => "copies",
            Part::GraphOverhead => "graph overhead",
            Part::ReadOut => "gradient read-out",
            Part::HostLoss => "host loss (f64)",
            Part::Optimizer => "optimizer (AdamW)",
        }
    }

    /// Whether the part is a kernel of the compiled graph (not host work around it).
    pub fn is_kernel(self) -> bool {
        !matches!(self, Part::GraphOverhead | Part::ReadOut | Part::HostLoss | Part::Optimizer)
    }
}

/// What one part added up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Kernel calls or timed regions.
    pub calls: u64,
    /// Seconds of self time.
    pub seconds: f64,
    /// Floating-point operations done (products only: 2 per multiply-add actually done, so a
    /// zero-skipping product counts its non-zeros).
    pub flops: f64,
    /// Bytes read and written: each input buffer once and each output once.
    pub bytes: f64,
}

impl Tally {
    fn add(&mut self, seconds: f64, flops: f64, bytes: f64) {
        self.calls += 1;
        self.seconds += seconds;
        self.flops += flops;
        self.bytes += bytes;
    }
}

/// Every part's tally over the recorded span.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    /// By part; parts that never ran are absent.
    pub parts: BTreeMap<Part, Tally>,
    /// By kernel: each graph node's label (what it computes, its node id) and its tally.
    pub kernels: BTreeMap<String, (Part, Tally)>,
}

struct Recorder {
    profile: Profile,
    /// Seconds tallied so far, so an outer region can subtract what ran inside it.
    tallied: f64,
    /// What the product running now said about itself ([`note_product`]).
    product: Option<(Part, f64)>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `f` recording this thread's profile, and returns it with `f`'s result. Graphs that `f`
/// compiles get timed kernels; [`restart`] inside `f` drops what was recorded so far (a
/// warm-up).
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Profile) {
    /// Ends the recording, also when `f` unwinds.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            RECORDER.with_borrow_mut(|r| *r = None);
        }
    }
    RECORDER.with_borrow_mut(|r| {
        *r = Some(Recorder { profile: Profile::default(), tallied: 0.0, product: None })
    });
    let stop = Stop;
    let out = f();
    let profile = RECORDER.with_borrow_mut(|r| r.take().map(|r| r.profile)).unwrap_or_default();
    drop(stop);
    (out, profile)
}

/// Whether this thread is recording.
pub fn recording() -> bool {
    RECORDER.with_borrow(Option::is_some)
}

/// Drops what this thread's recording holds so far.
pub fn restart() {
    RECORDER.with_borrow_mut(|r| {
        if let Some(r) = r {
            r.profile = Profile::default();
        }
    });
}

/// Runs `f`, adding its self time to `part` when this thread records.
pub(crate) fn time<T>(part: Part, f: impl FnOnce() -> T) -> T {
    let _span = Span::new(part);
    f()
}

/// Adds the self time from its creation to its drop to `part`, when this thread records.
pub(crate) struct Span(Option<(Part, Instant, f64)>);

impl Span {
    pub(crate) fn new(part: Part) -> Self {
        let tallied = RECORDER.with_borrow(|r| r.as_ref().map(|r| r.tallied));
        Span(tallied.map(|tallied| (part, Instant::now(), tallied)))
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((part, start, tallied)) = self.0 {
            add(part, None, start.elapsed().as_secs_f64(), tallied, 0.0, 0.0);
        }
    }
}

/// Runs kernel `f` (which reads `bytes_read`), adding its self time and the bytes it moved to
/// `part` (or the part the kernel named itself with [`note_product`]) and to `label`'s tally.
pub(crate) fn kernel<T>(
    part: Part,
    label: &str,
    bytes_read: f64,
    f: impl FnOnce() -> (T, f64),
) -> T {
    let Some(before) = RECORDER.with_borrow_mut(|r| {
        r.as_mut().map(|r| {
            r.product = None;
            r.tallied
        })
    }) else {
        return f().0;
    };
    let start = Instant::now();
    let (out, bytes_written) = f();
    let elapsed = start.elapsed().as_secs_f64();
    let (part, flops) = RECORDER
        .with_borrow_mut(|r| r.as_mut().and_then(|r| r.product.take()))
        .unwrap_or((part, 0.0));
    add(part, Some(label), elapsed, before, flops, bytes_read + bytes_written);
    out
}

/// Said by a product while it runs: which kind it turned out to be and the operations it did.
pub(crate) fn note_product(part: Part, flops: f64) {
    RECORDER.with_borrow_mut(|r| {
        if let Some(r) = r {
            r.product = Some((part, flops));
        }
    });
}

/// Adds one call of self time (`elapsed` less what was tallied inside it since
/// `tallied_before`) to `part`, and to the kernel `label` when it is one.
fn add(part: Part, label: Option<&str>, elapsed: f64, tallied_before: f64, flops: f64, bytes: f64) {
    RECORDER.with_borrow_mut(|r| {
        let Some(r) = r else { return };
        let own = (elapsed - (r.tallied - tallied_before)).max(0.0);
        r.profile.parts.entry(part).or_default().add(own, flops, bytes);
        if let Some(label) = label {
            let (_, tally) =
                r.profile.kernels.entry(label.to_string()).or_insert((part, Tally::default()));
            tally.add(own, flops, bytes);
        }
        r.tallied = tallied_before + elapsed;
    })
}

/// This machine's measured ceilings, to set a profile against
/// ([`crate::kernels::cpu::machine_peak`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peak {
    /// A large square sgemm through the engine's own product kernel, GFLOP/s.
    pub sgemm_gflops: f64,
    /// Its size (`n x n` times `n x n`).
    pub sgemm_n: usize,
    /// A large memory copy, GB/s of bytes read plus bytes written.
    pub copy_gb_per_s: f64,
    /// The copy's size in bytes.
    pub copy_bytes: usize,
    /// How long two threads take to hand a value to each other and back (a cache line's round
    /// trip between their cores), ns; `None` with one kernel thread. Every split kernel whose
    /// output the other thread reads pays for such trips.
    pub handoff_round_trip_ns: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_time_is_not_counted_twice() {
        let ((), profile) = record(|| {
            time(Part::GraphOverhead, || {
                kernel(Part::Elementwise, "relu", 8.0, || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    ((), 4.0)
                });
                std::thread::sleep(std::time::Duration::from_millis(5));
            })
        });
        let overhead = profile.parts[&Part::GraphOverhead];
        let kernel = profile.parts[&Part::Elementwise];
        assert!(kernel.seconds >= 0.020, "{kernel:?}");
        assert!(overhead.seconds >= 0.005 && overhead.seconds < 0.020, "{overhead:?}");
        assert_eq!((kernel.calls, kernel.bytes), (1, 12.0));
        assert_eq!(profile.kernels["relu"], (Part::Elementwise, kernel));
    }

    #[test]
    fn a_product_names_its_kind() {
        let ((), profile) = record(|| {
            kernel(Part::DenseProduct, "product", 0.0, || {
                note_product(Part::SparseProduct, 100.0);
                ((), 0.0)
            })
        });
        assert_eq!(profile.parts.keys().copied().collect::<Vec<_>>(), [Part::SparseProduct]);
        assert_eq!(profile.parts[&Part::SparseProduct].flops, 100.0);
        assert_eq!(profile.kernels["product"].0, Part::SparseProduct);
    }

    #[test]
    fn nothing_is_recorded_outside_a_recording() {
        assert!(!recording());
        assert_eq!(time(Part::Optimizer, || 3), 3);
        let ((), profile) = record(|| {
            time(Part::Optimizer, || {});
            restart();
        });
        assert!(profile.parts.is_empty());
        assert!(!recording());
    }
}
