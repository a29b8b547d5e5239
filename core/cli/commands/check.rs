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

/// Prints `FILE: ok` with the number of stages; a file with errors fails with code 2.
pub fn run(args: Args) -> Result<(), Failure> {
    let loaded = load::experiment(Source::File(args.file.clone()), &args.experiment)?;
    let n = loaded.ir.stages.len();
    print(&format!("{}: ok ({n} stage{})\n", args.file.display(), if n == 1 { "" } else { "s" }))
}
