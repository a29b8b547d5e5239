//! `ticketlab runs [DIR...]`: the run directories under DIR (default `runs/`), newest first,
//! with their experiment, tag, date, command-line overrides, arms, headline result and whether
//! every stage finished (or the run is still going, was stopped, or was cut short).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ticketlab_api::text::table;
use ticketlab_engine::lease::process_exists;
use ticketlab_engine::store::host_name;
use ticketlab_output::rundir::{InProgress, find_runs, read_manifest, read_summary};
use ticketlab_output::summary::{Spread, Summary};

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

/// The result to see first: the arm that generalised soonest against its baseline (with seed
/// repeats, the arm whose median speed-up over its seeds is highest), else when the first arm
/// generalised, else that none did.
fn headline(summary: &Summary) -> String {
    let groups = summary.over_seeds();
    if groups.iter().any(|g| g.seeds.len() > 1) {
        let baselines = summary.baseline_stages();
        let best = groups
            .iter()
            .filter(|g| !baselines.contains(&g.stage.as_str()))
            .filter_map(|g| Some((g, Spread::of(&g.speedup_t_gen)?)))
            .max_by(|x, y| x.1.median.total_cmp(&y.1.median));
        if let Some((g, s)) = best {
            let (median, n, of) = (s.median, s.n, g.seeds.len());
            return format!("{}: median {median:.2}x sooner over {n} of {of} seeds", g.name());
        }
        match summary.best_over_seeds() {
            Some((g, Some(t_gen), _)) => {
                return format!("{}: median t_gen {t_gen} over {} seeds", g.name(), g.seeds.len());
            }
            Some((_, None, _)) => {
                return "no arm generalised on more than half of its seeds".into();
            }
            None => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An arm of `stage` on `seed` with speed-up `speedup` against `dense` of its seed.
    fn arm(stage: &str, seed: u64, speedup: Option<f64>) -> serde_json::Value {
        let name = format!("{stage}@seed{seed}");
        let baseline = if stage == "dense" { name.clone() } else { format!("dense@seed{seed}") };
        serde_json::json!({
            "arm": name, "stage": stage, "seed": seed, "steps": 1000, "threshold": 0.95,
            "t_mem": 10, "t_gen": speedup.map(|s| (1000.0 / s) as u64), "tau_grok": null,
            "final_train_acc": 1.0, "final_test_acc": 1.0, "final_train_loss": 0.0,
            "final_test_loss": 0.0, "density": 1.0, "l1": 0.0, "l2": 0.0, "mask_rate": null,
            "speedup_t_gen": speedup, "baseline": baseline,
        })
    }

    #[test]
    fn with_seed_repeats_the_headline_is_the_median_not_the_luckiest_seed() {
        let arms: Vec<serde_json::Value> = (0..3)
            .map(|s| arm("dense", s, Some(1.0)))
            .chain([
                arm("ticket", 0, Some(2.0)),
                arm("ticket", 1, Some(3.0)),
                arm("ticket", 2, Some(10.0)),
            ])
            .chain([arm("late", 0, Some(0.5)), arm("late", 1, None), arm("late", 2, Some(0.5))])
            .collect();
        let summary: Summary = serde_json::from_value(serde_json::json!({
            "experiment": "e", "baseline": "dense@seed0", "arms": arms,
        }))
        .unwrap();
        assert_eq!(headline(&summary), "ticket: median 3.00x sooner over 3 of 3 seeds");
        let one_seed = Summary {
            arms: vec![summary.arms[0].clone(), summary.arms[3].clone()],
            ..summary.clone()
        };
        assert_eq!(headline(&one_seed), "ticket@seed0: t_gen 500, 2.00x sooner than dense@seed0");
    }
}
