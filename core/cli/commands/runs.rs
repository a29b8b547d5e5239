//! `ticketlab runs [DIR...]`: the run directories under DIR (default `runs/`), newest first,
//! with their experiment, tag, date, command-line overrides, arms, headline result and whether
//! every stage finished (or the run is still going, was stopped, or was cut short).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ticketlab_api::text::table;
use ticketlab_engine::lease::process_exists;
use ticketlab_engine::store::host_name;
use ticketlab_output::rundir::{InProgress, find_runs, read_manifest, read_summary};
use ticketlab_output::summary::Summary;

use crate::failure::{Failure, print};

/// Arguments of `runs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders holding run directories, or run directories themselves (default: runs).
    pub dirs: Vec<PathBuf>,
    /// Only the runs given this `run --tag`.
    #[arg(long, value_name = "TEXT")]
    pub tag: Option<String>,
}

/// The columns, in order.
const COLUMNS: [&str; 8] =
    ["run", "experiment", "tag", "created (UTC)", "overrides", "arms", "finished", "headline"];

/// Prints one line per run directory.
pub fn run(args: Args) -> Result<(), Failure> {
    let found = find_runs(&args.dirs).map_err(Failure::input)?;
    let mut rows: Vec<[String; 8]> = found
        .iter()
        .map(|dir| row(dir))
        .filter(|r| args.tag.as_ref().is_none_or(|tag| r[2] == *tag))
        .collect();
    // Newest first (the dates are ISO 8601, so they sort as text).
    rows.sort_by(|a, b| b[3].cmp(&a[3]).then_with(|| a[0].cmp(&b[0])));
    let mut out = table(&COLUMNS, &rows);
    let _ =
        writeln!(out, "{} run director{}", rows.len(), if rows.len() == 1 { "y" } else { "ies" });
    print(&out)
}

/// The row of one run directory: finished (every stage, or how many), still running, stopped,
/// cut short, or broken.
fn row(dir: &Path) -> [String; 8] {
    let path = dir.display().to_string();
    let broken = |e: ticketlab_api::Error| {
        let unknown = || "?".to_string();
        [
            path.clone(),
            unknown(),
            unknown(),
            unknown(),
            unknown(),
            unknown(),
            "broken".into(),
            e.to_string(),
        ]
    };
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    match InProgress::read(dir) {
        Ok(Some(marker)) => {
            return [
                path,
                marker.experiment.clone(),
                or_dash(&marker.tag),
                marker.started_utc.clone(),
                overrides(&marker.overrides),
                "-".into(),
                unfinished(&marker),
                format!("resume with: {}", marker.command),
            ];
        }
        Ok(None) => {}
        Err(e) => return broken(e),
    }
    match read_manifest(dir).and_then(|m| Ok((m, read_summary(dir)?))) {
        Ok((manifest, summary)) => {
            let stages = manifest.stages.len();
            let done = manifest.stages.iter().filter(|s| s.seconds.is_some()).count();
            let finished = if done == stages {
                "yes".to_string()
            } else {
                format!("{done} of {stages} stages")
            };
            [
                path,
                manifest.experiment.clone(),
                or_dash(&manifest.tag),
                manifest.created_utc.clone(),
                overrides(&manifest.overrides),
                summary.arms.len().to_string(),
                finished,
                headline(&summary),
            ]
        }
        Err(e) => broken(e),
    }
}

/// A run's command-line overrides on one line (`-` for none).
fn overrides(list: &[String]) -> String {
    if list.is_empty() { "-".into() } else { list.join(" ") }
}

/// What became of a run that has not written its manifest.
fn unfinished(marker: &InProgress) -> String {
    if let Some(reason) = &marker.interrupted {
        return format!("no: stopped ({reason})");
    }
    if marker.host != host_name() {
        return format!("no: running on {}, or cut short there", marker.host);
    }
    if process_exists(marker.pid) {
        return format!("no: running (pid {})", marker.pid);
    }
    "no: cut short (its process ended before writing manifest.json)".into()
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
