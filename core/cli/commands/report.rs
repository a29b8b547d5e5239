//! `ticketlab report DIR...`: regenerate a run directory's report, or compare several.

use std::path::PathBuf;
use std::time::SystemTime;

use ticketlab_api::text::utc_stamp;
use ticketlab_output::report;

use crate::failure::{Failure, print};

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories written by `ticketlab run`. One: its report.md, report.html and the
    /// figures drawn from its metrics are rewritten in place. Several: a comparison is written.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the comparison of several runs (default: `compare-<timestamp>` beside the
    /// first directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Regenerates one report or writes a comparison. A directory that is not a run directory, or a
/// malformed file in one, is an input error (exit 2); failing to write is a failure (exit 1).
pub fn run(args: Args) -> Result<(), Failure> {
    if let [dir] = args.dirs.as_slice() {
        if args.out.is_some() {
            return Err(Failure::input(
                "--out is for comparing several run directories; with one, its report is rewritten in place",
            ));
        }
        report::regenerate(dir).map_err(Failure::of_run_files)?;
        return print(&format!("report: {}\n", dir.join("report.md").display()));
    }
    let out = args.out.unwrap_or_else(|| {
        let parent = args.dirs[0].parent().map(PathBuf::from).unwrap_or_default();
        parent.join(format!("compare-{}", utc_stamp(SystemTime::now(), false)))
    });
    let written = report::compare(&args.dirs, &out).map_err(Failure::of_run_files)?;
    print(&format!("comparison: {}\n", written.display()))
}
