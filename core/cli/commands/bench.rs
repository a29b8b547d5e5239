//! `ticketlab bench`: time training steps of the tensor engine on one of the paper's models.

use std::fmt::Write as _;

use crate::bench::{BenchModel, PartPerStep, StepProfile, Timing};
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
    /// Threads of the matrix kernels. As in training, a step runs on one thread instead where
    /// timing both ways finds that faster on this machine (see `--fixed-threads`).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Split every step's kernels over `--threads`, never one thread instead: to time the
    /// split itself.
    #[arg(long)]
    pub fixed_threads: bool,
    /// Compute the loss on the host in f64 (as `loss_precision: f64` in a trainer does).
    #[arg(long)]
    pub f64_loss: bool,
    /// Flush subnormal floats to zero (x86 FTZ/DAZ) while timing, to measure what they cost.
    #[arg(long)]
    pub flush_denormals: bool,
    /// Also profile the step: time per kernel kind, FLOPs and bytes per step, against this
    /// machine's measured sgemm and memory-copy peaks (a second run with timed kernels).
    #[arg(long)]
    pub profile: bool,
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
    let timing = Timing {
        steps: args.steps,
        warmup: args.warmup,
        precision,
        fixed_threads: args.fixed_threads,
        profile: args.profile,
    };
    let r =
        crate::bench::train_step(&registry, model, timing, &runtime).map_err(Failure::failed)?;
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
    let _ = writeln!(out, "  on one thread    {} of {} steps", r.single_thread_steps, r.steps);
    let _ = writeln!(out, "  final loss       {:.5}", r.final_loss);
    let _ = writeln!(out, "  loss precision   {:?}", r.loss_precision);
    let _ = writeln!(out, "  flush denormals  {}", args.flush_denormals);
    if let Some(p) = &r.profile {
        write_profile(&mut out, p);
    }
    print(&out)
}

/// The profile as a table: each part's time per step, its share, and the rate it ran at
/// against the machine's peaks.
fn write_profile(out: &mut String, p: &StepProfile) {
    let _ = writeln!(
        out,
        "\nprofile: {} steps, median {:.3} ms/step with timers; peak: sgemm {:.1} GFLOP/s \
         ({n} x {n} x {n}), copy {:.1} GB/s ({} MiB)",
        p.steps,
        p.ms_per_step_median,
        p.peak.sgemm_gflops,
        p.peak.copy_gb_per_s,
        p.peak.copy_bytes >> 20,
        n = p.peak.sgemm_n,
    );
    if p.single_thread_steps > 0 {
        let _ = writeln!(out, "  {} of the steps ran on one thread", p.single_thread_steps);
    }
    if let Some(ns) = p.peak.handoff_round_trip_ns {
        let _ = writeln!(out, "  a value from one kernel thread to another and back: {ns:.0} ns");
    }
    write_rows(out, "part", &p.parts, p.peak.sgemm_gflops);
    let _ =
        writeln!(out, "\nkernels, the {} slowest of {}:", p.kernels.len().min(12), p.kernels.len());
    write_rows(out, "kernel", &p.kernels[..p.kernels.len().min(12)], p.peak.sgemm_gflops);
}

/// One line per part or kernel: calls, time and share per step, and the rates it ran at.
fn write_rows(out: &mut String, what: &str, rows: &[PartPerStep], peak_gflops: f64) {
    let _ = writeln!(
        out,
        "  {:<40} {:>6} {:>7} {:>6} {:>8} {:>8} {:>6} {:>7} {:>6}",
        what, "calls", "ms", "share", "MFLOP", "GFLOP/s", "%peak", "MB", "GB/s"
    );
    let total: f64 = rows.iter().map(|row| row.ms).sum();
    for row in rows {
        let (flops, rate, of_peak) = if row.flops > 0.0 {
            (
                format!("{:.1}", row.flops / 1e6),
                format!("{:.1}", row.gflops()),
                format!("{:.0}%", 100.0 * row.gflops() / peak_gflops),
            )
        } else {
            ("-".into(), "-".into(), "-".into())
        };
        let (bytes, bandwidth) = if row.bytes > 0.0 {
            (format!("{:.2}", row.bytes / 1e6), format!("{:.1}", row.gb_per_s()))
        } else {
            ("-".into(), "-".into())
        };
        let name: String = row.name.chars().take(40).collect();
        let _ = writeln!(
            out,
            "  {:<40} {:>6.1} {:>7.3} {:>5.1}% {:>8} {:>8} {:>6} {:>7} {:>6}",
            name,
            row.calls,
            row.ms,
            100.0 * row.ms / total,
            flops,
            rate,
            of_peak,
            bytes,
            bandwidth
        );
    }
    let _ = writeln!(out, "  {:<40} {:>6} {:>7.3}", "total", "", total);
}
