//! The training-step benchmark behind `ticketlab bench`: one of the paper's models on its
//! task, full batch, timed step by step. `tests/bench/torch_step.py` times the same step in
//! PyTorch.

use std::time::Instant;

use serde::Serialize;
use ticketlab_api::Result;
use ticketlab_api::data::Dataset;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::plugin::{Params, PluginKind, StageContext};
use ticketlab_api::runtime::{Device, Runtime};
use ticketlab_api::tensor::{Architecture, init_params};
use ticketlab_tensor::kernels;
use ticketlab_tensor::profile::{self, Part, Peak, Profile, Tally};
use ticketlab_tensor::{LossKind, LossPrecision, OptimizerConfig, StepSpec, TrainingSession};

/// Which of the paper's models the benchmark trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchModel {
    /// The MLP on (a+b) mod 67: d_emb 500, width 48, 911 training pairs, cross-entropy,
    /// AdamW with weight decay 1.
    Mlp,
    /// The paper code's 1-layer transformer on (a+b) mod 67: d_model 128, one head, d_mlp 128.
    Transformer,
    /// The MNIST MLP: 784-200-200-10, 1,000 digits, MSE, AdamW with weight decay 0.1.
    Mnist,
}

impl BenchModel {
    /// Every model, in the order benchmarks report them.
    pub const ALL: [BenchModel; 3] = [BenchModel::Mlp, BenchModel::Transformer, BenchModel::Mnist];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BenchModel::Mlp => "mlp",
            BenchModel::Transformer => "transformer",
            BenchModel::Mnist => "mnist",
        }
    }

    /// The model named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Which model.
    pub model: BenchModel,
    /// What was timed.
    pub workload: String,
    /// Timed steps (after warm-up).
    pub steps: usize,
    /// Median milliseconds per step (forward, backward and optimizer update).
    pub ms_per_step_median: f64,
    /// Mean milliseconds per step.
    pub ms_per_step_mean: f64,
    /// Fastest step.
    pub ms_per_step_min: f64,
    /// The model's matrix products as written (each counted dense, in the order the model
    /// writes them), divided by the median step time: the rate an engine that does all of that
    /// work would need.
    pub gflops: f64,
    /// Floating-point operations of the matrix products of one step as written, counted dense.
    pub flops_per_step: f64,
    /// Threads of the matrix kernels.
    pub threads: String,
    /// Timed steps that ran on one thread because timing found that faster here
    /// (`ticketlab_tensor::kernels::ThreadTuner`); 0 with fixed threads.
    pub single_thread_steps: u64,
    /// Training loss after the timed steps (a sanity check that work was done).
    pub final_loss: f64,
    /// Where the loss was computed (`f32` in the graph, `f64` on the host).
    pub loss_precision: LossPrecision,
    /// Where the time of a step goes (`--profile`), from steps timed after the others.
    pub profile: Option<StepProfile>,
}

/// Where the time of a step goes, part by part, against the machine's peak.
#[derive(Debug, Clone, Serialize)]
pub struct StepProfile {
    /// Profiled steps (after warm-up).
    pub steps: usize,
    /// Profiled steps that ran on one thread, found faster here (as [`BenchReport`]'s).
    pub single_thread_steps: u64,
    /// Median milliseconds per profiled step, timers included.
    pub ms_per_step_median: f64,
    /// Mean milliseconds per profiled step, timers included: what the parts add up to.
    pub ms_per_step_mean: f64,
    /// Each part, per step, largest first.
    pub parts: Vec<PartPerStep>,
    /// Each kernel of the graph (one node), per step, largest first; `part` says its kind.
    pub kernels: Vec<PartPerStep>,
    /// The machine's measured ceilings.
    pub peak: Peak,
}

/// One part (or one kernel) of a profiled step, per step.
#[derive(Debug, Clone, Serialize)]
pub struct PartPerStep {
    /// What the time was spent on.
    pub part: Part,
    /// Its name in tables: the part's, or the kernel's label.
    pub name: String,
    /// Kernel calls (or host regions) per step.
    pub calls: f64,
    /// Milliseconds per step.
    pub ms: f64,
    /// Floating-point operations per step (products).
    pub flops: f64,
    /// Bytes read and written per step (kernels).
    pub bytes: f64,
}

impl PartPerStep {
    /// GFLOP/s while this part ran.
    pub fn gflops(&self) -> f64 {
        self.flops / (self.ms * 1e6)
    }

    /// GB/s read and written while this part ran.
    pub fn gb_per_s(&self) -> f64 {
        self.bytes / (self.ms * 1e6)
    }
}

/// A model, its data and its training recipe.
pub struct BenchSetup {
    /// The task's data; the whole training split is the batch.
    pub data: Dataset,
    /// The network.
    pub arch: Box<dyn Architecture>,
    /// The loss.
    pub loss: LossKind,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Matrix-product FLOPs of one step as the model writes them.
    pub flops_per_step: f64,
    /// What is timed, in words.
    pub workload: String,
}

/// The data, network and recipe of `model`.
pub fn setup(registry: &Registry, model: BenchModel) -> Result<BenchSetup> {
    let ctx = StageContext::new("bench", 0, ".");
    let modular = || {
        Params::new()
            .with("op", "add")
            .with("p", 67)
            .with("pairs", "symmetric")
            .with("train_fraction", 0.4)
            .with("split_seed", 0)
    };
    let (task, data_params, arch_name, arch_params) = match model {
        BenchModel::Mlp => (
            "modular",
            modular(),
            "mlp_modular",
            Params::new().with("d_emb", 500).with("width", 48).with("kappa", 1.0),
        ),
        BenchModel::Transformer => (
            "modular",
            modular(),
            "transformer_modular",
            Params::new().with("d_model", 128).with("d_mlp", 128).with("heads", 1),
        ),
        BenchModel::Mnist => (
            "mnist",
            Params::new().with("path", "data/mnist-10k").with("train_size", 1000),
            "mnist_mlp",
            Params::new().with("width", 200).with("alpha", 8.0),
        ),
    };
    let data = registry
        .dataset(task)?
        .build(&with_defaults(registry, PluginKind::Dataset, task, data_params)?, &ctx)?;
    let arch = registry.architecture(arch_name)?.build(
        &with_defaults(registry, PluginKind::Architecture, arch_name, arch_params)?,
        &data.info,
    )?;
    let b = data.train.len() as f64;
    // A product of `[rows, k] x [k, n]` is 2 rows k n FLOPs forward; the backward pass computes
    // the weight's gradient and, unless the input is data, the input's: twice or three times that.
    let product = |rows: f64, k: f64, n: f64, input_is_data: bool| {
        2.0 * rows * k * n * if input_is_data { 2.0 } else { 3.0 }
    };
    let (loss, optimizer, flops, workload) = match model {
        BenchModel::Mlp => {
            let (p, d, w) = (67.0, 500.0, 48.0);
            let flops = product(b, p, d, true)
                + product(b, d, w, false)
                + product(b, w, d, false)
                + product(b, d, p, false);
            (
                LossKind::CrossEntropy,
                OptimizerConfig::paper_adamw(),
                flops,
                format!(
                    "paper MLP (p=67, d_emb=500, width=48), full batch {b}, AdamW: forward + backward + update"
                ),
            )
        }
        BenchModel::Transformer => {
            let (p, d, t) = (67.0, 128.0, 2.0);
            let rows = b * t;
            let flops = product(rows, p, d, true)
                + 4.0 * product(rows, d, d, false)
                + 2.0 * product(b * t, t, d, false)
                + 2.0 * product(rows, d, d, false)
                + product(b, d, p, false);
            (
                LossKind::CrossEntropy,
                OptimizerConfig::paper_adamw(),
                flops,
                format!(
                    "paper transformer (p=67, d_model=128, 1 head, d_mlp=128), full batch {b}, AdamW: forward + backward + update"
                ),
            )
        }
        BenchModel::Mnist => {
            let flops = product(b, 784.0, 200.0, true)
                + product(b, 200.0, 200.0, false)
                + product(b, 200.0, 10.0, false);
            let optimizer = OptimizerConfig { weight_decay: 0.1, ..OptimizerConfig::paper_adamw() };
            (
                LossKind::Mse,
                optimizer,
                flops,
                format!(
                    "MNIST MLP (784-200-200-10, alpha 8), full batch {b}, MSE, AdamW: forward + backward + update"
                ),
            )
        }
    };
    Ok(BenchSetup { data, arch, loss, optimizer, flops_per_step: flops, workload })
}

/// How [`train_step`] times a model's steps.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Where the loss is computed.
    pub precision: LossPrecision,
    /// Split every step over the runtime's threads, never one thread instead.
    pub fixed_threads: bool,
    /// Also run a [`StepProfile`].
    pub profile: bool,
}

/// Times `timing.steps` training steps of `model` after the warm-up, with the runtime's
/// device and kernel threads.
///
/// With `timing.profile`, a second session of the same model, compiled with timed kernels,
/// then runs as many steps again for [`StepProfile`]: the timers stay out of the first
/// measurement.
pub fn train_step(
    registry: &Registry,
    model: BenchModel,
    timing: Timing,
    runtime: &Runtime,
) -> Result<BenchReport> {
    kernels::with_threads(runtime.threads, || {
        let s = setup(registry, model)?;
        let run = || timed_steps(&s, timing, runtime.device);
        let (times, loss, single_thread_steps) = run()?;
        let profile = if timing.profile {
            let (profiled, parts) = profile::record(run);
            let (times, _, single) = profiled?;
            Some(step_profile(&times, single, parts, runtime.threads))
        } else {
            None
        };
        let median = median(&times);
        Ok(BenchReport {
            model,
            workload: s.workload.clone(),
            steps: timing.steps,
            ms_per_step_median: median,
            ms_per_step_mean: mean(&times),
            ms_per_step_min: times.iter().copied().fold(f64::NAN, f64::min),
            gflops: s.flops_per_step / (median * 1e6),
            flops_per_step: s.flops_per_step,
            threads: kernels::threads().to_string(),
            single_thread_steps,
            final_loss: loss,
            loss_precision: timing.precision,
            profile,
        })
    })
}

/// Trains `steps` steps after `warmup` untimed ones from the model's seed-0 initialisation:
/// each step's milliseconds and the last loss. While a profile records, the warm-up is
/// dropped from it.
fn timed_steps(s: &BenchSetup, timing: Timing, device: Device) -> Result<(Vec<f64>, f64, u64)> {
    let Timing { steps, warmup, precision, fixed_threads, .. } = timing;
    let params = init_params(s.arch.as_ref(), 0);
    let n = s.data.train.len();
    let spec = StepSpec { loss: s.loss, precision, optimizer: s.optimizer, batch_size: n, device };
    let mut session = TrainingSession::new(s.arch.as_ref(), params, None, &spec, &s.data.train)?;
    session.set_batch(&s.data.train)?;
    if fixed_threads {
        session.fix_threads();
    }
    for _ in 0..warmup {
        session.step()?;
    }
    let single_before = session.single_thread_steps();
    profile::restart();
    let mut times = Vec::with_capacity(steps);
    let mut loss = f64::NAN;
    for _ in 0..steps {
        let t = Instant::now();
        loss = session.step()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((times, loss, session.single_thread_steps() - single_before))
}

fn mean(times: &[f64]) -> f64 {
    times.iter().sum::<f64>() / times.len().max(1) as f64
}

fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `profile`'s tallies per step, largest first, with the machine's peak at `threads`.
fn step_profile(times: &[f64], single: u64, profile: Profile, threads: usize) -> StepProfile {
    let steps = times.len() as f64;
    let per_step = |part: Part, name: String, t: Tally| PartPerStep {
        part,
        name,
        calls: t.calls as f64 / steps,
        ms: t.seconds * 1e3 / steps,
        flops: t.flops / steps,
        bytes: t.bytes / steps,
    };
    let largest_first = |mut rows: Vec<PartPerStep>| {
        rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        rows
    };
    StepProfile {
        steps: times.len(),
        single_thread_steps: single,
        ms_per_step_median: median(times),
        ms_per_step_mean: mean(times),
        parts: largest_first(
            profile.parts.into_iter().map(|(p, t)| per_step(p, p.name().to_string(), t)).collect(),
        ),
        kernels: largest_first(
            profile.kernels.into_iter().map(|(label, (p, t))| per_step(p, label, t)).collect(),
        ),
        peak: kernels::cpu::machine_peak(threads),
    }
}

/// `given` completed with the plugin's declared defaults.
fn with_defaults(
    registry: &Registry,
    kind: PluginKind,
    name: &str,
    given: Params,
) -> Result<Params> {
    Ok(given.with_defaults(&registry.require(kind, name)?.params))
}
