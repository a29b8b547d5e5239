//! `ticketlab plan [FILE]`: the expanded stages with their cache keys and status.

use std::path::PathBuf;

use ticketlab_engine::plan;

use crate::failure::{Failure, print};
use crate::load::{self, ExperimentArgs, Source};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (.yaml or .tlx); without it, the built-in quickstart's plan, as
    /// `run` without a file runs it.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// The store to look results up in (default: .ticketlab in the working directory).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// `on`: training stages that share their shapes, data and schedule train together, one
    /// compiled graph per batch (the plan's `batch` column); `off`: each alone. Each stage's
    /// numbers are the same either way.
    #[arg(long, value_enum, default_value = "on", value_name = "on|off")]
    pub batch_arms: super::BatchArms,
}

/// Prints the plan table.
pub fn run(args: Args) -> Result<(), Failure> {
    let loaded = load::experiment(Source::of(args.file), &args.experiment)?;
    let store = super::store(args.store.as_ref())?;
    let plan = plan(&loaded.ir, &loaded.registry, Some(&store), &loaded.runtime)
        .map(|plan| args.batch_arms.apply(plan))
        .map_err(Failure::input)?;
    let mut text = plan.render();
    for line in ticketlab_engine::halving::describe(&plan) {
        text.push_str(&line);
        text.push('\n');
    }
    print(&text)
}
