//! `ticketlab check FILE`: parse and check an experiment file; run nothing.

use std::path::PathBuf;

use crate::failure::{Failure, print};
use crate::load::{self, ExperimentArgs, Source};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (.yaml or .tlx).
    pub file: PathBuf,
    #[command(flatten)]
    pub experiment: ExperimentArgs,
}

/// Prints `FILE: ok` with the number of stages (and of claims); a file with errors fails with
/// code 2.
pub fn run(args: Args) -> Result<(), Failure> {
    let loaded = load::experiment(Source::File(args.file.clone()), &args.experiment)?;
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut counts = count(loaded.ir.stages.len(), "stage");
    if !loaded.ir.claims.is_empty() {
        counts = format!("{counts}, {}", count(loaded.ir.claims.len(), "claim"));
    }
    print(&format!("{}: ok ({counts})\n", args.file.display()))
}
