//! A run's evaluations as TensorBoard event files (`ticketlab export DIR --tensorboard OUT`):
//! one folder per trained arm under OUT, which TensorBoard shows as one run each.
//!
//! Per evaluation step: `accuracy/train`, `accuracy/test`, `loss/train`, `loss/test`,
//! `norm/l1`, `norm/l2` and each parameter's `layer_l1/NAME` and `layer_l2/NAME` (values that are
//! not finite are left out). At the last step the text `grokking`: a table of the arm's stage,
//! seed, swept values, pruner, density, threshold, t_mem, t_gen, tau_grok, speed-up, stop and
//! final accuracies. A run still going (or stopped) is exported from its live log: accuracies,
//! losses and the L2 norm so far, and t_mem and t_gen so far.
//!
//! Wall times come from the live log where it has the evaluation (placed so that its last
//! event is when the run directory was written), else the time the directory was written.

mod event_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ticketlab_api::ir::written_name;
use ticketlab_api::metrics::{EvalRecord, RunSummary};
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::text::parse_utc_stamp;
use ticketlab_api::{Error, Result};

pub use event_file::FILE_VERSION;
use event_file::{EventFile, Value};

use crate::files;
use crate::live;
use crate::names;
use crate::rundir::{InProgress, RunFiles};
use crate::summary::SummaryRow;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// Each arm and its event file.
    pub files: Vec<(String, PathBuf)>,
    /// Exported from the live log of a run that has not finished.
    pub partial: bool,
}

/// One arm's evaluations and what is known of it.
struct ArmEvents {
    arm: String,
    evals: Vec<EvalRecord>,
    /// Wall time (seconds since 1970) of each evaluation.
    wall_times: Vec<f64>,
    /// The summary row of a finished run; a partial arm's numbers so far otherwise.
    summary: Option<SummaryRow>,
    so_far: Option<RunSummary>,
}

/// Writes the event files of the run directory `dir` under `out`, for every trained arm or,
/// with `only`, for the arm of that name or every arm of that stage (its sweep points and
/// seeds). A folder of `out` holding another run's event files is refused, never overwritten.
pub fn export(dir: &Path, out: &Path, only: Option<&str>) -> Result<Exported> {
    let (mut arms, partial) = if dir.join(names::MANIFEST).is_file() {
        (finished(dir)?, false)
    } else if dir.join(names::LIVE).is_file() {
        (unfinished(dir)?, true)
    } else {
        return Err(Error::data(
            dir,
            "not a run directory: it has neither manifest.json nor live.jsonl (give the directory `ticketlab run` wrote, as `ticketlab runs` lists them)",
        ));
    };
    if let Some(only) = only {
        let mut known: Vec<String> =
            arms.iter().map(|a| written_name(&a.arm).to_string()).collect();
        known.dedup();
        known.extend(arms.iter().filter(|a| written_name(&a.arm) != a.arm).map(|a| a.arm.clone()));
        arms.retain(|a| a.arm == only || written_name(&a.arm) == only);
        if arms.is_empty() {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(Error::Other(format!(
                "the run {} trained no arm `{only}`: {}",
                dir.display(),
                suggestion(only, &names, "its stages and arms")
            )));
        }
    }
    let file_name = format!("events.out.tfevents.{}.ticketlab", run_label(dir));
    let mut written = Vec::new();
    let mut folders = BTreeMap::new();
    for arm in &arms {
        let mut folder = run_folder(&arm.arm);
        let n = folders.entry(folder.clone()).and_modify(|n| *n += 1).or_insert(1);
        if *n > 1 {
            folder = format!("{folder}-{n}");
        }
        let path = out.join(folder).join(&file_name);
        refuse_other_runs(&path)?;
        files::write(&path, event_file(arm))?;
        written.push((arm.arm.clone(), path));
    }
    Ok(Exported { files: written, partial })
}

/// The arms of a finished run, from `metrics.jsonl` and `summary.json`.
fn finished(dir: &Path) -> Result<Vec<ArmEvents>> {
    let run = RunFiles::read(dir)?;
    let written_at = parse_utc_stamp(&run.manifest.created_utc).unwrap_or(0) as f64;
    // The live log's seconds, shifted so that its last event is when the directory was written.
    let live = live_arms(dir).unwrap_or_default();
    let last = live.iter().flat_map(|a| a.eval_seconds.last()).fold(0.0, |m: f64, &s| m.max(s));
    let live_seconds = |arm: &str, step: u64| {
        let a = live.iter().find(|a| a.arm == arm)?;
        let i = a.evals.iter().position(|e| e.step == step)?;
        Some(written_at - last + a.eval_seconds[i])
    };
    Ok(run
        .summary
        .arms
        .iter()
        .map(|row| {
            let evals: Vec<EvalRecord> =
                run.metrics.iter().filter(|l| l.arm == row.arm).map(|l| l.record.clone()).collect();
            let wall_times = evals
                .iter()
                .map(|e| live_seconds(&row.arm, e.step).unwrap_or(written_at))
                .collect();
            ArmEvents {
                arm: row.arm.clone(),
                evals,
                wall_times,
                summary: Some(row.clone()),
                so_far: None,
            }
        })
        .collect())
}

/// The arms of a run that has not finished, from its live log.
fn unfinished(dir: &Path) -> Result<Vec<ArmEvents>> {
    let started =
        InProgress::read(dir)?.and_then(|m| parse_utc_stamp(&m.started_utc)).unwrap_or(0) as f64;
    Ok(live_arms(dir)?
        .into_iter()
        .filter(|a| !a.evals.is_empty())
        .map(|a| ArmEvents {
            so_far: RunSummary::from_records(&a.evals, a.threshold.unwrap_or(0.95), f64::NAN),
            wall_times: a.eval_seconds.iter().map(|s| started + s).collect(),
            arm: a.arm,
            evals: a.evals,
            summary: None,
        })
        .collect())
}

fn live_arms(dir: &Path) -> Result<Vec<live::ArmState>> {
    let path = dir.join(names::LIVE);
    Ok(live::arms(&live::parse(&path, &files::read(&path)?)?))
}

/// The event file of one arm.
fn event_file(arm: &ArmEvents) -> Vec<u8> {
    let first = arm.wall_times.first().copied().unwrap_or(0.0);
    let mut file = EventFile::new(first);
    for (eval, &wall_time) in arm.evals.iter().zip(&arm.wall_times) {
        file.summary(wall_time, eval.step, scalars(eval));
    }
    if let (Some(last), Some(&wall_time)) = (arm.evals.last(), arm.wall_times.last()) {
        let text = grokking_table(arm);
        file.summary(wall_time, last.step, vec![("grokking".into(), Value::Text(text))]);
    }
    file.into_bytes()
}

/// The scalars of one evaluation, finite values only.
fn scalars(e: &EvalRecord) -> Vec<(String, Value)> {
    let mut values = vec![
        ("accuracy/train".to_string(), e.train_acc),
        ("accuracy/test".to_string(), e.test_acc),
        ("loss/train".to_string(), Some(e.train_loss)),
        ("loss/test".to_string(), Some(e.test_loss)),
        ("norm/l1".to_string(), Some(e.norms.l1)),
        ("norm/l2".to_string(), Some(e.norms.l2)),
    ];
    for (layer, norms) in &e.layers {
        values.push((format!("layer_l1/{layer}"), Some(norms.l1)));
        values.push((format!("layer_l2/{layer}"), Some(norms.l2)));
    }
    values
        .into_iter()
        .filter_map(|(tag, v)| v.filter(|v| v.is_finite()).map(|v| (tag, Value::Scalar(v as f32))))
        .collect()
}

/// The arm's grokking numbers as a Markdown table (TensorBoard's text dashboard renders it).
fn grokking_table(arm: &ArmEvents) -> String {
    let step = |s: Option<u64>| s.map_or("never".to_string(), |s| s.to_string());
    let percent = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.2}%", 100.0 * a));
    let mut rows: Vec<(&str, String)> = Vec::new();
    let run = match (&arm.summary, &arm.so_far) {
        (Some(row), _) => {
            rows.push(("stage", row.stage.clone()));
            rows.push(("seed", row.seed.to_string()));
            for (key, value) in &row.sweep {
                rows.push((key.as_str(), crate::summary::cell(Some(value))));
            }
            rows.push(("pruner", row.pruner.clone().unwrap_or_else(|| "none (dense)".into())));
            rows.push(("density", format!("{:.4}", row.run.density)));
            &row.run
        }
        (None, Some(run)) => {
            rows.push(("stage", written_name(&arm.arm).to_string()));
            rows.push(("partial", "the run has not finished: numbers so far".into()));
            run
        }
        (None, None) => return String::new(),
    };
    rows.push(("steps", run.steps.to_string()));
    rows.push(("threshold", percent(Some(run.threshold))));
    rows.push(("t_mem", step(run.t_mem)));
    rows.push(("t_gen", step(run.t_gen)));
    rows.push(("tau_grok", run.tau_grok.map_or("-".into(), |t| format!("{t:.3}"))));
    if let Some(row) = &arm.summary {
        let against = row.baseline.as_deref().unwrap_or("-");
        let speedup = row.speedup_t_gen.map_or("-".into(), |s| format!("{s:.3}x"));
        rows.push(("speed-up (t_gen)", format!("{speedup} against {against}")));
    }
    if let Some(stopped) = &run.stopped {
        rows.push(("stopped", stopped.clone()));
    }
    rows.push(("final train accuracy", percent(run.final_train_acc)));
    rows.push(("final test accuracy", percent(run.final_test_acc)));
    let mut text = format!("**{}**\n\n| | |\n|---|---|\n", arm.arm);
    for (key, value) in rows {
        text.push_str(&format!("| {key} | {} |\n", value.replace('|', "\\|")));
    }
    text
}

/// The folder of an arm: TensorBoard names a run by its folder, so the arm's name is kept as
/// written (`ticket_train[mask.rate=0.6]@seed1`) but without the quotes of string values
/// (`mask.uses=magnitude`) and with `_` for the other characters a file name cannot hold on some
/// system (`/ \ : * ? < > |`, controls).
fn run_folder(arm: &str) -> String {
    arm.chars()
        .filter(|&c| c != '"')
        .map(|c| if c.is_control() || "/\\:*?<>|".contains(c) { '_' } else { c })
        .collect()
}

/// The run directory's own name, which names the event files so that two runs exported into one
/// folder are told apart.
fn run_label(dir: &Path) -> String {
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "run".into());
    run_folder(&name).replace(' ', "_")
}

/// Refuses to write `path` beside event files of another run: TensorBoard would merge both into
/// one curve.
fn refuse_other_runs(path: &Path) -> Result<()> {
    let Some(folder) = path.parent() else { return Ok(()) };
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok(()) };
    for entry in entries.flatten() {
        let other = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("tfevents") && other != path {
            return Err(Error::Other(format!(
                "{} holds another run's events ({name}): TensorBoard would draw both as one run. Give each run its own folder (`--tensorboard OUT/RUN`), or remove that file",
                folder.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_keep_the_arm_name_readable() {
        let arm = "ticket_train[mask.rate=0.6]@seed1";
        assert_eq!(run_folder(arm), arm);
        assert_eq!(
            run_folder("ticket_train[mask.rate=0.3,mask.uses=\"magnitude\"]@seed0"),
            "ticket_train[mask.rate=0.3,mask.uses=magnitude]@seed0"
        );
        assert_eq!(run_folder("a[data.path=\"x/y:z\"]"), "a[data.path=x_y_z]");
    }
}
