//! `ticketlab plugins list` and `ticketlab plugins describe KIND/NAME`.

use std::path::PathBuf;

use ticketlab_api::plugin::describe;

use crate::failure::{Failure, print};
use crate::load;

/// The `plugins` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every plugin: kind, name, version, origin and summary, sorted.
    List {
        /// Also load this dynamic plugin library; repeatable.
        #[arg(long = "plugin", value_name = "PATH")]
        plugins: Vec<PathBuf>,
    },
    /// A plugin's parameters with types, defaults and docs, and an example stage.
    Describe {
        /// The plugin, as KIND/NAME (e.g. pruner/magnitude).
        plugin: String,
        /// Also load this dynamic plugin library; repeatable.
        #[arg(long = "plugin", value_name = "PATH")]
        plugins: Vec<PathBuf>,
    },
}

/// Prints the list or the description.
pub fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::List { plugins } => {
            let registry = load::registry(&plugins)?;
            print(&describe::list(&registry))
        }
        Command::Describe { plugin, plugins } => {
            let registry = load::registry(&plugins)?;
            let text = describe::describe(&registry, &plugin).map_err(Failure::input)?;
            print(&text)
        }
    }
}
