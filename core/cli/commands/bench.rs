//! `ticketlab bench`: time training steps of the tensor engine on the paper's MLP.

use std::fmt::Write as _;

use crate::failure::{Failure, print};
use crate::load;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Threads of the matrix kernels.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the measurements as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> Result<(), Failure> {
    if args.steps == 0 {
        return Err(Failure::input("--steps must be at least 1"));
    }
    load::set_threads(args.threads)?;
    let registry = load::registry(&[])?;
    let r = ticketlab_plugins::bench::mlp_step(&registry, args.steps, args.warmup).map_err(Failure::failed)?;
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
    print(&out)
}
