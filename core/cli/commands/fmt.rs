//! `ticketlab fmt FILE --to yaml|tlx`: print an experiment in the other (or the same) form.

use std::path::PathBuf;

use crate::failure::{Failure, print};

/// The two forms of an experiment file.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Form {
    /// YAML.
    Yaml,
    /// The .tlx experiment language.
    Tlx,
}

/// Arguments of `fmt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (.yaml or .tlx).
    pub file: PathBuf,
    /// The form to print.
    #[arg(long, value_enum)]
    pub to: Form,
}

/// Prints the converted file on stdout.
pub fn run(args: Args) -> Result<(), Failure> {
    let name = args.file.display().to_string();
    let text = std::fs::read(&args.file)
        .map_err(|e| Failure::input(format!("cannot read {name}: {e}")))?;
    let to = match args.to {
        Form::Yaml => ticketlab_dsl::Format::Yaml,
        Form::Tlx => ticketlab_dsl::Format::Tlx,
    };
    let out = ticketlab_dsl::format(&name, &text, to)
        .map_err(|d| Failure::Rendered { text: d.render(), code: 2 })?;
    print(&out)
}
