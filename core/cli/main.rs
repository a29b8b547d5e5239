//! The `ticketlab` command: check, plan and run experiment files, convert between their two
//! forms, list plugins, pin results as snapshots, and regenerate reports.
//!
//! Exit codes (the README's table): 0 success; 1 the work failed (a stage of a run); 2 a usage
//! or input error found before anything runs (bad arguments, a file that cannot be read, parsed
//! or checked, an unwritable output); 3 a run stopped by SIGINT, SIGTERM or SIGHUP after saving
//! its state. A closed output pipe (`ticketlab plugins list | head`)
//! ends quietly with 0.

// The built-in plugins register themselves with inventory; referencing the crate makes sure
// the linker keeps them.
use ticketlab_plugins as _;

// Every kernel allocates its output buffer each step, and many are a few hundred KB: glibc's
// allocator hands those back to the kernel and faults them in again on every step (a third of
// a small model's step time), where mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod commands;
mod failure;
mod load;
mod signals;
mod slurm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use failure::Failure;

/// The commit this program was built from (`build.rs`), `None` outside a git checkout.
pub(crate) const ENGINE_COMMIT: Option<&str> = option_env!("TICKETLAB_COMMIT");

/// Lottery-ticket and grokking experiments from experiment files.
#[derive(Debug, Parser)]
#[command(name = "ticketlab", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an experiment file without running anything.
    Check(commands::check::Args),
    /// Show the stages an experiment would run, with their cache keys and status.
    Plan(commands::plan::Args),
    /// Run an experiment (the built-in quickstart when no FILE is given).
    Run(commands::run::Args),
    /// Convert an experiment file between YAML and the .tlx language.
    Fmt(commands::fmt::Args),
    /// List and describe plugins.
    #[command(subcommand)]
    Plugins(commands::plugins::Command),
    /// Run an experiment deterministically and print its snapshot as YAML.
    Snapshot(commands::snapshot::Args),
    /// Regenerate the report of one run directory, or compare several.
    Report(commands::report::Args),
    /// Judge the claims of finished runs again (computes nothing); exit 1 when one fails.
    Claims(commands::claims::Args),
    /// Run every experiment file of a folder over one store and rewrite the generated part of
    /// its RESULTS.md from the runs.
    Reproduce(commands::reproduce::Args),
    /// Write an arm's weights and mask to a .safetensors or .npz file (for PyTorch or NumPy).
    Export(commands::export::Args),
    /// Time training steps of the tensor engine.
    Bench(commands::bench::Args),
    /// List run directories: experiment, date, arms, headline result, whether they finished.
    Runs(commands::runs::Args),
    /// Show what the store holds, or remove what no run directory refers to (`store gc`).
    Store(commands::store::Args),
    /// Follow a run while it trains (per training: step, accuracies, t_mem, t_gen, time left).
    Watch(commands::watch::Args),
    /// Serve one dynamic plugin call on stdin and stdout (ticketlab runs every plugin call in
    /// such a process, so that a crashing plugin fails only its stage).
    #[command(hide = true)]
    PluginHost,
}

fn main() -> ExitCode {
    failure::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = std::panic::catch_unwind(|| dispatch(cli))
        .unwrap_or_else(|payload| Err(Failure::from_panic(payload)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Fmt(a) => commands::fmt::run(a),
        Command::Plugins(c) => commands::plugins::run(c),
        Command::Snapshot(a) => commands::snapshot::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Claims(a) => commands::claims::run(a),
        Command::Reproduce(a) => commands::reproduce::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Runs(a) => commands::runs::run(a),
        Command::Store(a) => commands::store::run(a),
        Command::Watch(a) => commands::watch::run(a),
        Command::PluginHost => {
            ticketlab_engine::dylib::serve_isolated_call().map_err(Failure::failed)
        }
    }
}
