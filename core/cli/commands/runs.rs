//! `ticketlab runs [DIR...]`: the run directories under DIR (default `runs/`), newest first,
//! with their experiment, date, arms, headline result and whether every stage finished.

use std::fmt::Write as _;
use std::path::PathBuf;

use ticketlab_api::text::table;
use ticketlab_output::rundir::{find_runs, read_manifest, read_summary};
use ticketlab_output::summary::Summary;

use crate::failure::{Failure, print};

/// Arguments of `runs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders holding run directories, or run directories themselves (default: runs).
    pub dirs: Vec<PathBuf>,
}

/// Prints one line per run directory.
pub fn run(args: Args) -> Result<(), Failure> {
    let found = find_runs(&args.dirs).map_err(Failure::input)?;
    let mut rows: Vec<[String; 6]> = found
        .iter()
        .map(|dir| match read_manifest(dir).and_then(|m| Ok((m, read_summary(dir)?))) {
            Ok((manifest, summary)) => {
                let stages = manifest.stages.len();
                let done = manifest.stages.iter().filter(|s| s.seconds.is_some()).count();
                let finished = if done == stages {
                    "yes".to_string()
                } else {
                    format!("{done} of {stages} stages")
                };
                [
                    dir.display().to_string(),
                    manifest.experiment,
                    manifest.created_utc,
                    summary.arms.len().to_string(),
                    finished,
                    headline(&summary),
                ]
            }
            Err(e) => [
                dir.display().to_string(),
                "?".into(),
                "?".into(),
                "?".into(),
                "?".into(),
                format!("unreadable: {e}"),
            ],
        })
        .collect();
    // Newest first (the dates are ISO 8601, so they sort as text).
    rows.sort_by(|a, b| b[2].cmp(&a[2]).then_with(|| a[0].cmp(&b[0])));
    let mut out =
        table(&["run", "experiment", "created (UTC)", "arms", "finished", "headline"], &rows);
    let _ =
        writeln!(out, "{} run director{}", rows.len(), if rows.len() == 1 { "y" } else { "ies" });
    print(&out)
}

/// The result to see first: the arm that generalised soonest against its baseline, else when the
/// first arm generalised, else that none did.
fn headline(summary: &Summary) -> String {
    let fastest = summary
        .arms
        .iter()
        .filter_map(|a| Some((a, a.speedup_t_gen?)))
        .filter(|(a, _)| a.baseline.as_deref() != Some(a.arm.as_str()))
        .max_by(|x, y| x.1.total_cmp(&y.1));
    if let Some((arm, speedup)) = fastest {
        let t = arm.run.t_gen.map_or_else(|| "-".into(), |t| t.to_string());
        let against = arm.baseline.as_deref().map(|b| format!(" than {b}")).unwrap_or_default();
        return format!("{}: t_gen {t}, {speedup:.2}x sooner{against}", arm.arm);
    }
    if let Some(arm) = summary.arms.iter().find(|a| a.run.t_gen.is_some()) {
        return format!("{}: t_gen {}", arm.arm, arm.run.t_gen.unwrap_or_default());
    }
    let best = summary
        .arms
        .iter()
        .filter_map(|a| Some((a, a.run.final_test_acc?)))
        .max_by(|x, y| x.1.total_cmp(&y.1));
    match best {
        Some((arm, acc)) => {
            format!("no arm generalised; best test accuracy {acc:.3} ({})", arm.arm)
        }
        None if summary.arms.is_empty() => "no trained arm".into(),
        None => "no arm generalised".into(),
    }
}
