//! `ticketlab report DIR...`: regenerate a run directory's report, or compare several.

use std::path::PathBuf;

use crate::failure::Failure;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories written by `ticketlab run`.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write a comparison of several runs (default: beside the first).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Regenerates the report(s).
pub fn run(args: Args) -> Result<(), Failure> {
    // TODO(outputs): delegate to the output module's report generator once it lands.
    let _ = (&args.dirs, &args.out);
    Err(Failure::failed("`ticketlab report` needs the output module, which this build does not have yet"))
}
