//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod claims;
pub mod export;
pub mod fmt;
pub mod plan;
pub mod plugins;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod runs;
pub mod snapshot;
pub mod store;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use ticketlab_api::runtime::{DEFAULT_PLUGIN_TIMEOUT, Runtime};
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

/// Options of how stages run, shared by the commands that run them (`run`, `snapshot`).
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Kill a dynamic plugin's call (a pruner's scores, a dataset's build) that has not
    /// returned after SECONDS, failing its stage (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_PLUGIN_TIMEOUT.as_secs())]
    pub plugin_timeout: u64,
}

impl Default for RuntimeArgs {
    fn default() -> Self {
        Self { plugin_timeout: DEFAULT_PLUGIN_TIMEOUT.as_secs() }
    }
}

impl RuntimeArgs {
    /// `base` (device and budget from the experiment's options) with `threads` kernel threads
    /// and dynamic plugin calls in child processes of this very program (`ticketlab
    /// plugin-host`), with the time limit asked for.
    pub fn runtime(&self, base: &Runtime, threads: usize) -> Result<Runtime, Failure> {
        let program = std::env::current_exe().map_err(|e| {
            Failure::failed(format!("cannot find this program to run plugin calls in: {e}"))
        })?;
        Ok(Runtime {
            threads,
            plugin_host: Some(program),
            plugin_timeout: (self.plugin_timeout > 0)
                .then(|| Duration::from_secs(self.plugin_timeout)),
            ..base.clone()
        })
    }
}
