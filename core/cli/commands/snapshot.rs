//! `ticketlab snapshot FILE`: run deterministically in a temporary store and print the
//! snapshot (see `ticketlab_testing`) as YAML, for committing and diffing.

use std::path::PathBuf;

use ticketlab_testing::{SnapshotOptions, snapshot};

use crate::failure::{Failure, print};
use crate::load::{self, ExperimentArgs, Source};

/// Arguments of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (.yaml or .tlx).
    pub file: PathBuf,
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Threads of the matrix kernels (the snapshot does not depend on it).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub runtime: super::RuntimeArgs,
}

/// Prints the snapshot; a failing stage gives exit code 1.
pub fn run(args: Args) -> Result<(), Failure> {
    let threads = load::threads(args.threads, 1)?;
    let loaded = load::experiment(Source::File(args.file), &args.experiment)?;
    let runtime = args.runtime.runtime(&loaded.runtime, threads)?;
    let options = SnapshotOptions { runtime };
    let snap = snapshot(&loaded.ir, &loaded.registry, &options).map_err(Failure::failed)?;
    print(&snap.to_yaml())
}
