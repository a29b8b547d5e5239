//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod fmt;
pub mod plan;
pub mod plugins;
pub mod report;
pub mod run;
pub mod runs;
pub mod snapshot;
pub mod store;

use std::path::PathBuf;

use ticketlab_engine::{Plan, Store};

use crate::failure::Failure;

/// The store at `--store`, or `.ticketlab/` under the working directory.
pub fn store(dir: Option<&PathBuf>) -> Result<Store, Failure> {
    match dir {
        Some(d) => Ok(Store::new(d)),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| Failure::input(format!("cannot read the working directory: {e}")))?;
            Ok(Store::in_dir(&cwd))
        }
    }
}

/// `--batch-arms`: whether training stages of the same shapes train together in one compiled
/// graph, as the plan groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchArms {
    /// Together, where the plan shows a batch (each stage's `batch_arms` parameter can still
    /// keep it out).
    On,
    /// Every training stage alone.
    Off,
}

impl BatchArms {
    /// `plan` with its batches, or without them.
    pub fn apply(self, plan: Plan) -> Plan {
        match self {
            BatchArms::On => plan,
            BatchArms::Off => plan.without_batches(),
        }
    }
}
