//! `ticketlab claims DIR...`: the claims of finished runs judged again from their run
//! directories, computing nothing; and the verdict lines `run` prints.

use std::path::PathBuf;

use ticketlab_api::claims::{Judgement, Verdict};
use ticketlab_output::rundir::{RunFiles, find_runs};

use crate::failure::{Failure, print};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories, or folders of run directories (default: runs/).
    pub dirs: Vec<PathBuf>,
}

/// Prints every claim's verdict of each finished run found; exit code 1 when one fails, 2 when
/// a directory cannot be read.
pub fn run(args: Args) -> Result<(), Failure> {
    let found = find_runs(&args.dirs).map_err(Failure::input)?;
    if found.is_empty() {
        return Err(Failure::input("no run directories found; give the folder `--out` named"));
    }
    let mut failed = Vec::new();
    for dir in found {
        let run = RunFiles::read(&dir).map_err(Failure::input)?;
        let judged = if run.claims.is_empty() {
            "  (the experiment states no claims)\n".to_string()
        } else {
            verdicts(&run.claims)
        };
        print(&format!("{}\n{judged}", dir.display()))?;
        failed.extend(
            self::failed(&run.claims).into_iter().map(|f| format!("{}: {f}", dir.display())),
        );
    }
    if failed.is_empty() { Ok(()) } else { Err(Failure::Failed(failed.join("\n"))) }
}

/// One line per claim: `  claim NAME: VERDICT (RULE): how`; nothing without claims.
pub fn verdicts(claims: &[Judgement]) -> String {
    claims
        .iter()
        .map(|j| {
            format!("  claim {}: {} ({}): {}\n", j.claim, j.overall, j.rule.name(), j.explanation)
        })
        .collect()
}

/// A message for each failing claim.
pub fn failed(claims: &[Judgement]) -> Vec<String> {
    claims
        .iter()
        .filter(|j| j.overall == Verdict::Fails)
        .map(|j| format!("claim `{}` fails: {}", j.claim, j.explanation))
        .collect()
}
