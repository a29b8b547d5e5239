//! Whether a training session's steps split their kernels over the kernel threads, decided by
//! timing both.
//!
//! Splitting a kernel pays only while the threads hand data to each other quickly. On a virtual
//! machine the host may place two virtual cores far apart: measured on this project's machine,
//! a cache line then takes about 200 ns from one core to the other (a round trip of 400 ns,
//! against about 100 ns at other times), and the paper MLP's step, whose kernels each read what
//! the other core wrote, takes longer on two threads than on one (tests/bench/BENCHMARKS.md).
//! Every thread count gives the same bits, so a session may choose its count step by step: it
//! times a few steps each way now and then, and runs the rest the faster way.

use std::time::Duration;

/// Steps before the first trial: the first steps pay for warming the caches and the allocator.
const WARMUP: u64 = 5;

/// Steps of a trial: blocks of [`BLOCK`] steps, split and on one thread in turn, so that a
/// change in the machine's speed during the trial weighs on both ways alike.
const TRIAL: u64 = 4 * BLOCK;

/// Steps in a row run one way during a trial. The first of them is not counted: it pays for
/// moving the previous step's data between the cores' caches, a cost of the change of way
/// (steps run on one thread right after split ones were measured about 45% slower than
/// steps run on one thread after others).
const BLOCK: u64 = 4;

/// Steps from the start of one trial to the next: the host may move the cores at any time, and
/// a trial costs at most half its steps run the slower way (under 1% of the steps).
const PERIOD: u64 = 1000;

/// One thread is chosen only when its median step is at least this much shorter than the split
/// one's: the caller asked for the threads, and a close call is noise.
const MARGIN: f64 = 0.95;

/// Chooses the kernel threads of each step of a session: the caller's, or one.
#[derive(Debug, Clone)]
pub struct ThreadTuner {
    /// Steps recorded so far.
    steps: u64,
    /// Steps of those that ran on one thread while more were available.
    single_steps: u64,
    /// Whether steps outside trials run on one thread.
    single: bool,
    /// The current trial's step times: split, and on one thread.
    split_times: Vec<Duration>,
    single_times: Vec<Duration>,
}

impl Default for ThreadTuner {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadTuner {
    /// A tuner that splits until its first trial says otherwise.
    pub fn new() -> Self {
        Self {
            steps: 0,
            single_steps: 0,
            single: false,
            split_times: Vec::new(),
            single_times: Vec::new(),
        }
    }

    /// Where the next step lies in its period's trial: `Some(i)` for the trial's step `i`.
    fn trial_step(&self) -> Option<u64> {
        let since = self.steps.checked_sub(WARMUP)?;
        Some(since % PERIOD).filter(|&i| i < TRIAL)
    }

    /// The kernel threads for the next step, given the `available` ones ([`super::threads`]).
    pub fn threads(&self, available: usize) -> usize {
        let single = match self.trial_step() {
            Some(i) => (i / BLOCK) % 2 == 1,
            None => self.single,
        };
        if single { 1 } else { available }
    }

    /// Records that the step just run on `threads` of `available` threads took `took`; at the
    /// end of a trial, chooses the faster way for the steps up to the next one.
    pub fn record(&mut self, available: usize, threads: usize, took: Duration) {
        let trial = self.trial_step();
        self.steps += 1;
        if available <= 1 {
            return;
        }
        self.single_steps += u64::from(threads == 1);
        let Some(i) = trial else { return };
        if i % BLOCK != 0 {
            if threads == 1 { &mut self.single_times } else { &mut self.split_times }.push(took);
        }
        if i + 1 == TRIAL {
            let (split, single) = (median(&mut self.split_times), median(&mut self.single_times));
            self.single = single.as_secs_f64() < MARGIN * split.as_secs_f64();
            self.split_times.clear();
            self.single_times.clear();
        }
    }

    /// The kernel threads for work between steps (evaluations), given the `available` ones:
    /// the current choice.
    pub fn chosen(&self, available: usize) -> usize {
        if self.single { 1 } else { available }
    }

    /// How many of the steps recorded ran on one thread while more were available.
    pub fn single_steps(&self) -> u64 {
        self.single_steps
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` steps on `available` threads, each taking `split` or `single` as it runs,
    /// and returns the threads each step ran on.
    fn run(
        tuner: &mut ThreadTuner,
        steps: u64,
        available: usize,
        split: u64,
        single: u64,
    ) -> Vec<usize> {
        (0..steps)
            .map(|_| {
                let threads = tuner.threads(available);
                let took = Duration::from_micros(if threads == 1 { single } else { split });
                tuner.record(available, threads, took);
                threads
            })
            .collect()
    }

    /// Where one thread is faster, the steps after the trial run on one thread; where the split
    /// is faster or the difference is within the margin, they stay split.
    #[test]
    fn the_faster_way_runs_between_trials() {
        let mut tuner = ThreadTuner::new();
        let threads = run(&mut tuner, WARMUP + TRIAL + 100, 2, 1400, 1100);
        assert!(threads[..WARMUP as usize].iter().all(|&t| t == 2), "split before the trial");
        let trial = &threads[WARMUP as usize..(WARMUP + TRIAL) as usize];
        assert_eq!(trial.iter().filter(|&&t| t == 1).count(), TRIAL as usize / 2, "{trial:?}");
        assert!(threads[(WARMUP + TRIAL) as usize..].iter().all(|&t| t == 1));
        assert!(tuner.single);

        for (split, single) in [(800, 1100), (1000, 980)] {
            let mut tuner = ThreadTuner::new();
            let threads = run(&mut tuner, WARMUP + TRIAL + 100, 2, split, single);
            assert!(threads[(WARMUP + TRIAL) as usize..].iter().all(|&t| t == 2));
            assert!(!tuner.single);
        }
    }

    /// The next trial revisits the choice: a machine whose cores became close again gets its
    /// split steps back.
    #[test]
    fn each_period_tries_again() {
        let mut tuner = ThreadTuner::new();
        run(&mut tuner, WARMUP + TRIAL, 2, 1400, 1100);
        assert!(tuner.single);
        let threads = run(&mut tuner, PERIOD, 2, 700, 1100);
        assert!(!tuner.single, "the second trial chose the split");
        assert!(threads[..(PERIOD - TRIAL) as usize].iter().all(|&t| t == 1));
        assert!(threads[(PERIOD - TRIAL) as usize..].contains(&2));
    }

    /// With one thread available there is nothing to choose, and nothing is recorded.
    #[test]
    fn one_thread_is_left_alone() {
        let mut tuner = ThreadTuner::new();
        let threads = run(&mut tuner, WARMUP + 3 * TRIAL, 1, 1400, 1100);
        assert!(threads.iter().all(|&t| t == 1));
        assert!(!tuner.single);
        assert!(tuner.split_times.is_empty() && tuner.single_times.is_empty());
    }
}
