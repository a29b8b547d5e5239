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

use ticketlab_engine::Store;

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
