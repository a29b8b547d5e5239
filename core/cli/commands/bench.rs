//! `ticketlab bench`: time training steps of the tensor engine on one of the paper's models.

use std::fmt::Write as _;

use crate::bench::BenchModel;
use ticketlab_api::runtime::Runtime;
use ticketlab_tensor::LossPrecision;

use crate::failure::{Failure, print};
use crate::load;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: `mlp` (the paper's MLP on (a+b) mod 67), `transformer` (its 1-layer
    /// transformer) or `mnist` (the 784-200-200-10 MNIST MLP).
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "transformer", "mnist"])]
    pub model: String,
    /// Timed steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Threads of the matrix kernels.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Compute the loss on the host in f64 (as `loss_precision: f64` in a trainer does).
    #[arg(long)]
    pub f64_loss: bool,
    /// Flush subnormal floats to zero (x86 FTZ/DAZ) while timing, to measure what they cost.
    #[arg(long)]
    pub flush_denormals: bool,
    /// Print the measurements as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> Result<(), Failure> {
    if args.steps == 0 {
        return Err(Failure::input("--steps must be at least 1"));
    }
    let threads = load::threads(args.threads, 1)?;
    let runtime = Runtime { threads, device: load::device()?, ..Runtime::default() };
    if args.flush_denormals {
        // Before the first matrix product, so the kernels' thread pool inherits the setting.
        ticketlab_tensor::kernels::cpu::denormals::flush_to_zero();
    }
    let registry = load::registry(&[])?;
    let precision = if args.f64_loss { LossPrecision::F64 } else { LossPrecision::F32 };
    let model = BenchModel::parse(&args.model).ok_or_else(|| {
        Failure::input(format!("unknown --model `{}`: use mlp, transformer or mnist", args.model))
    })?;
    let r =
        crate::bench::train_step(&registry, model, args.steps, args.warmup, precision, &runtime)
            .map_err(Failure::failed)?;
    if args.json {
        let text = serde_json::to_string_pretty(&r).map_err(Failure::failed)?;
        return print(&format!("{text}\n"));
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.workload);
    let _ = writeln!(out, "  steps timed      {}", r.steps);
    let _ = writeln!(out, "  ms/step median   {:.3}", r.ms_per_step_median);
    let _ = writeln!(out, "  ms/step mean     {:.3}", r.ms_per_step_mean);
    let _ = writeln!(out, "  ms/step min      {:.3}", r.ms_per_step_min);
    let _ = writeln!(out, "  GFLOP/s          {:.2}", r.gflops);
    let _ = writeln!(out, "  threads          {}", r.threads);
    let _ = writeln!(out, "  final loss       {:.5}", r.final_loss);
    let _ = writeln!(out, "  loss precision   {:?}", r.loss_precision);
    let _ = writeln!(out, "  flush denormals  {}", args.flush_denormals);
    print(&out)
}
