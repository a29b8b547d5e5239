//! The training-step benchmark behind `ticketlab bench`: the paper's MLP on (a+b) mod 67,
//! full batch of 911 pairs, AdamW, timed step by step.

use std::time::Instant;

use serde::Serialize;
use ticketlab_core::plugin::registry::Registry;
use ticketlab_core::plugin::{Params, PluginKind, StageContext};
use ticketlab_core::tensor::{Architecture, LossPrecision, StepSpec, TrainingSession, init_params};
use ticketlab_core::Result;
use ticketlab_core::data::Dataset;

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What was timed.
    pub workload: String,
    /// Timed steps (after warm-up).
    pub steps: usize,
    /// Median milliseconds per step (forward, backward and AdamW update).
    pub ms_per_step_median: f64,
    /// Mean milliseconds per step.
    pub ms_per_step_mean: f64,
    /// Fastest step.
    pub ms_per_step_min: f64,
    /// The step's matrix products counted as dense (including the embedding's products with
    /// one-hot inputs, which the kernels skip the zeros of), divided by the median step time.
    pub gflops: f64,
    /// Floating-point operations of the matrix products of one step, counted as dense.
    pub flops_per_step: f64,
    /// Threads given to the matmul kernels (`MATMUL_NUM_THREADS`).
    pub threads: String,
    /// Training loss after the timed steps (a sanity check that work was done).
    pub final_loss: f64,
    /// Where the loss was computed (`f32` in the graph, `f64` on the host).
    pub loss_precision: LossPrecision,
}

/// The paper's setup (PAPER-SPEC sections 1.1 and 2.1): (a+b) mod 67 on the code's symmetric
/// pairs with 40% for training (911 pairs, split seed 0), and its MLP (d_emb 500, width 48).
pub fn paper_setup(registry: &Registry) -> Result<(Dataset, Box<dyn Architecture>)> {
    let ctx = StageContext { stage: "bench".into(), seed: 0, base_dir: ".".into() };
    let data_params = Params::new().with("op", "add").with("p", 67).with("pairs", "symmetric").with("train_fraction", 0.4).with("split_seed", 0);
    let data = registry.dataset("modular")?.build(&with_defaults(registry, PluginKind::Dataset, "modular", data_params)?, &ctx)?;
    let arch_params = Params::new().with("d_emb", 500).with("width", 48).with("kappa", 1.0);
    let arch = registry.architecture("mlp_modular")?.build(&with_defaults(registry, PluginKind::Architecture, "mlp_modular", arch_params)?, &data.info)?;
    Ok((data, arch))
}

/// Times `steps` training steps of the paper's MLP after `warmup` untimed ones.
pub fn mlp_step(registry: &Registry, steps: usize, warmup: usize, precision: LossPrecision) -> Result<BenchReport> {
    let (data, arch) = paper_setup(registry)?;
    let params = init_params(arch.as_ref(), 0);
    let n = data.train.len();
    let mut session = TrainingSession::new(arch.as_ref(), params, None, &StepSpec { precision, ..StepSpec::paper(n) }, &data.train)?;
    session.set_batch(&data.train)?;
    for _ in 0..warmup {
        session.step()?;
    }
    let mut times = Vec::with_capacity(steps);
    let mut loss = f64::NAN;
    for _ in 0..steps {
        let t = Instant::now();
        loss = session.step()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // Matmul FLOPs: forward 2*B*in*out per layer; backward twice that, except that the first
    // layer's input (token counts) needs no gradient.
    let (b, p, d, w) = (n as f64, 67.0, 500.0, 48.0);
    let layers = [(p, d), (d, w), (w, d), (d, p)];
    let flops: f64 = layers.iter().enumerate().map(|(i, (i_n, o_n))| 2.0 * b * i_n * o_n * if i == 0 { 2.0 } else { 3.0 }).sum();
    Ok(BenchReport {
        workload: format!("paper MLP (p=67, d_emb=500, width=48), full batch {n}, AdamW: forward + backward + update"),
        steps,
        ms_per_step_median: median,
        ms_per_step_mean: times.iter().sum::<f64>() / times.len().max(1) as f64,
        ms_per_step_min: sorted.first().copied().unwrap_or(f64::NAN),
        gflops: flops / (median * 1e6),
        flops_per_step: flops,
        threads: std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        final_loss: loss,
        loss_precision: precision,
    })
}

/// `given` completed with the plugin's declared defaults.
fn with_defaults(registry: &Registry, kind: PluginKind, name: &str, given: Params) -> Result<Params> {
    Ok(given.with_defaults(&registry.require(kind, name)?.params))
}
