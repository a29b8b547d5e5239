//! Helper threads that stay awake between the kernels of a training step, and the ways a
//! kernel splits its work over them ([`split_out`], [`fresh_out`], [`filled_out`],
//! [`split_pieces`]).
//!
//! Splitting a kernel over threads pays only if the other threads start at once. A pooled
//! thread that sleeps between kernels (rayon's workers do) takes about 100 µs to wake on a
//! virtual machine: longer than half of most of the paper's products, so splitting them made
//! steps slower. The helpers here wait for work by spinning (on `pause`, yielding their core to
//! any other runnable thread now and then) for a while after each job before they sleep, and
//! the calling thread runs the first part itself, then every part a helper has not started
//! yet: on a busy machine a helper may wait milliseconds for a core, and the caller would
//! otherwise wait for it. No crate offers that trade (rayon's sleep is not configurable), so it
//! is written here.
//!
//! Work is split into blocks of its output, never into parts of a sum: every thread count
//! gives the same bits.
//!
//! One caller at a time uses the team; another caller meanwhile runs its parts itself, in the
//! same order, with the same results.

// A job borrows the caller's stack: its lifetime is erased while a helper runs it, and `split`
// does not return (or unwind) before every helper is done with it.
#![allow(unsafe_code)]

use std::any::Any;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle helper spins before it sleeps: longer than the gaps between the products of
/// a step, shorter than anything a person would notice a core busy for.
const SPIN: Duration = Duration::from_millis(2);

/// The work of one split: called once with each part's index.
type Work<'a> = dyn Fn(usize) + Sync + 'a;

/// Runs `work(p)` once for each part `p` in `0..parts`: part 0 on the calling thread, the others
/// on helpers (at most `threads - 1` of them), or all on the calling thread when `threads` is 1
/// or another thread is using the helpers. Once done with its own parts, the caller also runs
/// each part its helper has not started yet. A part that panics is re-raised here once every
/// part has finished.
pub(super) fn split(threads: usize, parts: usize, work: &Work<'_>) {
    let helpers = parts.min(threads).saturating_sub(1);
    if helpers == 0 {
        (0..parts).for_each(work);
        return;
    }
    let mut team = match TEAM.try_lock() {
        Ok(team) => team,
        // A panic re-raised by an earlier split poisons the lock; the helpers are fine.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return (0..parts).for_each(work),
    };
    while team.len() < helpers {
        let helper = Helper::start(team.len());
        team.push(helper);
    }
    // SAFETY: only the lifetime is erased. Every helper given the job has finished with it before
    // `Posted` is dropped, which happens before this function returns or unwinds.
    let job: &'static Work<'static> = unsafe { std::mem::transmute::<&Work<'_>, _>(work) };
    let posted = Posted(&team[..helpers]);
    // Parts past the helpers (more parts than threads) run here, after part 0.
    for (h, helper) in posted.0.iter().enumerate() {
        helper.post(job, h + 1);
    }
    work(0);
    (helpers + 1..parts).for_each(work);
    // A part whose helper has not started it yet (asleep, or waiting for a core on a busy
    // machine) runs here rather than be waited for.
    for helper in posted.0 {
        if let Some((job, part)) = helper.reclaim() {
            job(part);
        }
    }
    drop(posted);
    if let Some(panic) = team[..helpers].iter().find_map(Helper::take_panic) {
        std::panic::resume_unwind(panic);
    }
}

/// Elementwise work (a fused group, a binary op, a copy, a reduction, the optimizer) that reads
/// or writes at least this many elements is split over the kernel threads: about 10 µs of work
/// or more, against a few µs to hand a part to a helper that is awake.
pub(super) const PARALLEL_ELEMENTS: usize = 1 << 15;

/// How many parts work over `units` units (rows, elements) that reads or writes `work`
/// elements in all is split into: one below [`PARALLEL_ELEMENTS`], else one per kernel thread
/// (at most one per unit).
pub(crate) fn parts(threads: usize, work: usize, units: usize) -> usize {
    if work >= PARALLEL_ELEMENTS { threads.clamp(1, units.max(1)) } else { 1 }
}

/// Runs `f(piece)` once for each of `pieces` (disjoint parts of the work: blocks of an output,
/// slices of state), on the kernel threads as [`split`] runs its parts.
pub(crate) fn split_pieces<S: Send>(threads: usize, pieces: Vec<S>, f: &(dyn Fn(S) + Sync)) {
    #[cfg(test)]
    SPLITS.set(SPLITS.get() + usize::from(pieces.len() > 1));
    // Each part takes its own piece (a lock nobody else takes, so never waited for).
    let pieces: Vec<Mutex<Option<S>>> = pieces.into_iter().map(|s| Mutex::new(Some(s))).collect();
    split(threads, pieces.len(), &|p| {
        let piece = pieces[p].lock().unwrap_or_else(PoisonError::into_inner).take();
        f(piece.expect("each part runs once"));
    });
}

/// Cuts `out` into blocks of whole units (`unit` elements each: an element, a row), as many as
/// [`parts`] says, and calls `fill(units, block)` for each, `units` being the block's units,
/// numbered from 0, on the kernel threads ([`split_pieces`]). Each element is computed as it
/// would be alone, so every thread count gives the same bits.
pub(super) fn split_out<T: Send>(
    threads: usize,
    work: usize,
    out: &mut [T],
    unit: usize,
    fill: &(dyn Fn(Range<usize>, &mut [T]) + Sync),
) {
    let units = out.len().checked_div(unit).unwrap_or(0);
    let parts = parts(threads, work, units);
    if parts == 1 {
        return fill(0..units, out);
    }
    let cut = |p: usize| p * units / parts;
    let mut rest = out;
    let blocks: Vec<(Range<usize>, &mut [T])> = (0..parts)
        .map(|p| {
            let (block, tail) =
                std::mem::take(&mut rest).split_at_mut((cut(p + 1) - cut(p)) * unit);
            rest = tail;
            (cut(p)..cut(p + 1), block)
        })
        .collect();
    split_pieces(threads, blocks, &|(units, block)| fill(units, block));
}

#[cfg(test)]
thread_local! {
    /// Work [`split_pieces`] split on this thread, so tests can tell that it did.
    pub(crate) static SPLITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What fills a block of a fresh output ([`fresh_out`]).
type Fill<'a> = dyn Fn(Range<usize>, &mut [MaybeUninit<f32>]) -> usize + Sync + 'a;

/// A fresh output of `len` elements, cut and filled as by [`split_out`] with units of one
/// element: `fill(elements, block)` writes every element of its block and returns how many it
/// wrote. Nothing is zeroed first.
pub(super) fn fresh_out(threads: usize, work: usize, len: usize, fill: &Fill<'_>) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    split_out(threads, work, &mut out.spare_capacity_mut()[..len], 1, &|elements, block| {
        let written = fill(elements, block);
        assert_eq!(written, block.len(), "a block's fill writes each of its elements");
    });
    // SAFETY: the blocks of `split_out` cover the `len` elements, each handed to one `fill`
    // that wrote every element of it (checked above), or panicked, and a panic is re-raised by
    // `split` before this line.
    unsafe { out.set_len(len) };
    out
}

/// A fresh output of `len` elements (whole units of `unit` elements), cut as by [`split_out`],
/// each block first set to `init` by the thread that then fills it: kernels that add into their
/// output write its memory while it is in that thread's cache, rather than wait for the
/// calling thread to zero all of it.
pub(super) fn filled_out(
    threads: usize,
    work: usize,
    len: usize,
    unit: usize,
    init: f32,
    fill: &(dyn Fn(Range<usize>, &mut [f32]) + Sync),
) -> Vec<f32> {
    assert!(len.checked_rem(unit).is_none_or(|rest| rest == 0), "whole units");
    let mut out: Vec<f32> = Vec::with_capacity(len);
    split_out(threads, work, &mut out.spare_capacity_mut()[..len], unit, &|units, block| {
        block.fill(MaybeUninit::new(init));
        // SAFETY: every element of the block was just initialised.
        let block = unsafe { &mut *(std::ptr::from_mut(block) as *mut [f32]) };
        fill(units, block);
    });
    // SAFETY: the blocks of `split_out` cover the `len` elements (whole units), each set to
    // `init` above, or a block panicked, re-raised by `split` before this line.
    unsafe { out.set_len(len) };
    out
}

/// The helpers, made on first use.
static TEAM: Mutex<Vec<Arc<Helper>>> = Mutex::new(Vec::new());

/// One helper thread and its mailbox.
struct Helper {
    /// The posted job and part; taken by the helper.
    job: Mutex<Option<(&'static Work<'static>, usize)>>,
    /// Whether a job waits in `job`: whoever turns it off (the helper, or the caller taking the
    /// part back) runs the job.
    posted: AtomicBool,
    /// Whether the last job posted is done.
    done: AtomicBool,
    /// Whether the helper is asleep (or about to be), to be woken by the next post.
    asleep: AtomicBool,
    /// The panic of the last job, if it panicked.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    thread: Thread,
}

impl Helper {
    /// Starts helper number `index`, waiting for work.
    fn start(index: usize) -> Arc<Self> {
        // The helper needs its own thread's handle (to be woken), so it gets its mailbox after
        // the thread has started.
        let (mailbox_tx, mailbox_rx) = std::sync::mpsc::channel::<Arc<Helper>>();
        let thread = std::thread::Builder::new()
            .name(format!("ticketlab-kernel-{index}"))
            .spawn(move || {
                if let Ok(helper) = mailbox_rx.recv() {
                    helper.serve();
                }
            })
            .expect("a kernel thread starts");
        let helper = Arc::new(Helper {
            job: Mutex::new(None),
            posted: AtomicBool::new(false),
            done: AtomicBool::new(true),
            asleep: AtomicBool::new(false),
            panic: Mutex::new(None),
            thread: thread.thread().clone(),
        });
        mailbox_tx.send(helper.clone()).expect("the helper thread waits for its mailbox");
        helper
    }

    /// Hands the helper `part` of `job`, waking it if it sleeps.
    fn post(&self, job: &'static Work<'static>, part: usize) {
        *self.job.lock().unwrap_or_else(PoisonError::into_inner) = Some((job, part));
        self.done.store(false, Ordering::SeqCst);
        self.posted.store(true, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    /// The helper thread's loop: wait for a job (spinning for [`SPIN`], then asleep), claim it
    /// (unless the caller took it back), run it, keep its panic if it panics, say it is done.
    fn serve(&self) {
        loop {
            let idle = Instant::now();
            let mut rounds = 0u32;
            while !self.posted.load(Ordering::SeqCst) {
                rounds = rounds.wrapping_add(1);
                // Spinning on `pause` (not on a system call) tells a virtual machine's host that
                // this core only waits, so the host can run the caller's core meanwhile.
                if !rounds.is_multiple_of(64) {
                    std::hint::spin_loop();
                    continue;
                }
                if idle.elapsed() < SPIN {
                    std::thread::yield_now();
                    continue;
                }
                self.asleep.store(true, Ordering::SeqCst);
                if !self.posted.load(Ordering::SeqCst) {
                    std::thread::park();
                }
                self.asleep.store(false, Ordering::SeqCst);
            }
            let Some((work, part)) = self.claim() else { continue };
            if let Err(panic) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(part)))
            {
                *self.panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(panic);
            }
            self.done.store(true, Ordering::SeqCst);
        }
    }

    /// The posted job and part, if this call is the one that claims them.
    fn claim(&self) -> Option<(&'static Work<'static>, usize)> {
        self.posted.compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst).ok()?;
        self.job.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The caller's side of [`Helper::claim`]: the job and part to run on the calling thread
    /// when the helper has not claimed them yet, which then counts as done.
    fn reclaim(&self) -> Option<(&'static Work<'static>, usize)> {
        let job = self.claim()?;
        self.done.store(true, Ordering::SeqCst);
        Some(job)
    }

    /// The panic of the last job, once.
    fn take_panic(self: &Arc<Self>) -> Option<Box<dyn Any + Send>> {
        self.panic.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Helpers running a job that borrows the caller's stack: dropping it (also while unwinding)
/// waits until each has finished.
struct Posted<'a>(&'a [Arc<Helper>]);

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        for helper in self.0 {
            // Spinning, but giving the core up now and then: on a busy machine the helper may
            // be waiting for it.
            let mut rounds = 0u32;
            while !helper.done.load(Ordering::SeqCst) {
                rounds = rounds.wrapping_add(1);
                if rounds.is_multiple_of(256) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Every part runs exactly once, whatever the numbers of threads and parts.
    #[test]
    fn every_part_runs_once() {
        for threads in 1..=4 {
            for parts in 0..=6 {
                let runs: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                split(threads, parts, &|p| {
                    runs[p].fetch_add(1, Ordering::SeqCst);
                });
                assert!(runs.iter().all(|r| r.load(Ordering::SeqCst) == 1), "{threads} {parts}");
            }
        }
    }

    /// A part that panics on a helper is re-raised to the caller once the other parts are done,
    /// and the helpers go on working.
    #[test]
    fn a_panicking_part_reaches_the_caller_after_the_others() {
        let finished = AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            split(3, 3, &|p| {
                if p == 2 {
                    panic!("part {p} fails");
                }
                std::thread::sleep(Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        let message = caught.expect_err("the panic is re-raised");
        assert_eq!(message.downcast_ref::<String>().map(String::as_str), Some("part 2 fails"));
        assert_eq!(finished.load(Ordering::SeqCst), 2);
        // Part 1 runs on a helper again. Other tests of this process use the helpers too (a
        // caller that finds them busy runs every part itself), so keep trying for a while: a
        // count of tries can all fall inside another test's use on a busy machine. Part 0 waits
        // a little for part 1 to start, since a caller done with its own part takes back a part
        // its helper has not started.
        let deadline = Instant::now() + Duration::from_secs(30);
        let on_a_helper = std::iter::repeat_with(|| {
            let name = Mutex::new(None);
            let started = AtomicBool::new(false);
            split(2, 2, &|p| {
                if p == 1 {
                    started.store(true, Ordering::SeqCst);
                    *name.lock().unwrap() = std::thread::current().name().map(str::to_owned);
                } else {
                    let wait = Instant::now();
                    while !started.load(Ordering::SeqCst)
                        && wait.elapsed() < Duration::from_millis(100)
                    {
                        std::thread::yield_now();
                    }
                }
            });
            let helped =
                name.into_inner().unwrap().is_some_and(|n| n.starts_with("ticketlab-kernel"));
            if !helped {
                std::thread::sleep(Duration::from_millis(1));
            }
            helped
        })
        .take_while(|_| Instant::now() < deadline)
        .any(|helped| helped);
        assert!(on_a_helper);
    }

    /// A posted part is claimed once: by the caller taking it back (then it counts as done) or
    /// by the helper, never both.
    #[test]
    fn a_posted_part_is_claimed_once() {
        let helper = Helper {
            job: Mutex::new(None),
            posted: AtomicBool::new(false),
            done: AtomicBool::new(true),
            asleep: AtomicBool::new(false),
            panic: Mutex::new(None),
            thread: std::thread::current(),
        };
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let work: &'static Work<'static> = &|p| {
            RUNS.fetch_add(p, Ordering::SeqCst);
        };
        assert!(helper.reclaim().is_none(), "nothing posted");
        helper.post(work, 3);
        assert!(!helper.done.load(Ordering::SeqCst));
        let (job, part) = helper.reclaim().expect("the caller takes it back");
        assert!(helper.done.load(Ordering::SeqCst));
        assert!(helper.claim().is_none() && helper.reclaim().is_none());
        job(part);
        assert_eq!(RUNS.load(Ordering::SeqCst), 3);
        helper.post(work, 1);
        assert!(helper.claim().is_some());
        assert!(helper.reclaim().is_none(), "claimed by the helper");
    }

    /// Callers on several threads at once each get all their parts run (one of them by the
    /// helpers, the others by themselves).
    #[test]
    fn concurrent_callers_each_run_their_parts() {
        std::thread::scope(|scope| {
            for caller in 0..4 {
                scope.spawn(move || {
                    for _ in 0..200 {
                        let runs: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                        split(2, 3, &|p| {
                            runs[p].fetch_add(caller + 1, Ordering::SeqCst);
                        });
                        assert!(runs.iter().all(|r| r.load(Ordering::SeqCst) == caller + 1));
                    }
                });
            }
        });
    }
}
