//! The run directory: everything one execution leaves for people and scripts.
//!
//! [`write_run_dir`] writes the data files into one directory, and [`crate::write_run`] the
//! figures and the report after them:
//!
//! | file | content |
//! |---|---|
//! | `experiment.resolved.json` | the IR, canonical JSON (every default filled) |
//! | `experiment.resolved.yaml` | the same, as YAML |
//! | `manifest.json` | versions, plugins, seeds, cache keys, backend, threads, wall times ([`Manifest`]) |
//! | `metrics.jsonl` | one line per evaluation per trained arm: `{"arm": STAGE, ...EvalRecord}` |
//! | `metrics.csv` | the same evaluations as a long table with each arm's stage, seed and swept values ([`metrics_csv`]) |
//! | `summary.csv`, `summary.json` | one row per trained arm ([`Summary`], schema in the README) |
//! | `claims.csv` | the experiment's claims judged per seed and over seeds ([`crate::claims`]; only when it states claims) |
//! | `masks.json` | per mask stage: pruner, rate, scored step, global and per-layer density, warnings ([`MaskSummary`]) |
//! | `analyses/<stage>.json` | the output of every analyze and report stage, as the plugin documents it |
//! | `figures/*.svg`, `figures/index.json` | the figures ([`crate::figures`]) |
//! | `report.md`, `report.html` | the report ([`crate::report`]) |
//!
//! While a run computes, its directory holds `in_progress.json` alone ([`InProgress`]: who
//! runs it, the command and the keys it needs); `manifest.json` is written last, after the
//! report, and only then is the marker removed. A directory with a marker and no manifest is a
//! run still going, stopped (Ctrl-C, SIGTERM: the marker says so and how to resume) or cut short
//! (killed, a full disk), and never passes for a finished one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::names;
use ticketlab_api::text::utc_stamp;

use serde::{Deserialize, Serialize};

use super::files;
use super::summary::Summary;
use ticketlab_api::artifact::{Artifact, LayerDensity};
use ticketlab_api::ir::{ExperimentIr, StageKind, written_name};
use ticketlab_api::metrics::EvalRecord;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::{Error, Result};
use ticketlab_engine::{Execution, Plan};

/// Wall time of one stage in this execution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    /// Seconds spent (loading, for a cached stage).
    pub seconds: f64,
    /// Whether the result came from the store.
    pub cached: bool,
}

/// Per-stage facts of one execution, owned, for building [`RunOutputs`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageFacts {
    /// Cache key by stage name.
    pub keys: BTreeMap<String, String>,
    /// Wall time by stage name (stages that did not finish are absent).
    pub timings: BTreeMap<String, StageTiming>,
    /// Plugin fingerprint (`kind/name@version`) by stage name (rewind stages are absent).
    pub plugins: BTreeMap<String, String>,
}

impl StageFacts {
    /// Collects keys and fingerprints from `plan` and timings from `execution`'s reports.
    pub fn from_execution(plan: &Plan, execution: &Execution) -> Self {
        let mut facts = Self::default();
        for ps in &plan.stages {
            facts.keys.insert(ps.stage.name.clone(), ps.key.to_string());
            if let Some(fp) = &ps.fingerprint {
                facts.plugins.insert(ps.stage.name.clone(), fp.clone());
            }
        }
        for r in execution.reports.iter().filter(|r| r.outcome.succeeded()) {
            let cached = matches!(r.outcome, ticketlab_engine::StageOutcome::Cached);
            facts.timings.insert(r.name.clone(), StageTiming { seconds: r.seconds, cached });
        }
        facts
    }
}

/// Everything [`write_run_dir`] needs, borrowed from the caller.
#[derive(Clone)]
pub struct RunOutputs<'a> {
    /// The resolved experiment.
    pub ir: &'a ExperimentIr,
    /// The artifact of every finished stage, by stage name.
    pub artifacts: &'a BTreeMap<String, Artifact>,
    /// Cache key by stage name.
    pub keys: &'a BTreeMap<String, String>,
    /// Wall time by stage name.
    pub timings: &'a BTreeMap<String, StageTiming>,
    /// Plugin fingerprint (`kind/name@version`) by stage name.
    pub plugins: &'a BTreeMap<String, String>,
    /// The plugins the stages ran with: analyze and report stages' plugins hand over their
    /// figures and the arms they compare.
    pub registry: &'a Registry,
    /// The command, its overrides and the user's labels.
    pub invocation: Invocation,
    /// Worker threads used.
    pub threads: usize,
    /// Backend label, e.g. `cpu/f32`.
    pub backend: &'a str,
}

impl<'a> RunOutputs<'a> {
    /// Outputs from an execution's artifacts, the facts collected by
    /// [`StageFacts::from_execution`] and the registry the stages ran with.
    pub fn new(
        ir: &'a ExperimentIr,
        artifacts: &'a BTreeMap<String, Artifact>,
        facts: &'a StageFacts,
        registry: &'a Registry,
        invocation: Invocation,
        threads: usize,
        backend: &'a str,
    ) -> Self {
        Self {
            ir,
            artifacts,
            keys: &facts.keys,
            timings: &facts.timings,
            plugins: &facts.plugins,
            registry,
            invocation,
            threads,
            backend,
        }
    }
}

/// How a run was asked for: the command and what it changed, and the user's labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The exact command line that reproduces the run.
    pub command: String,
    /// The command line's changes to the file: `--set`, `--grid`, `--zip` and `--seeds`, as
    /// given.
    pub overrides: Vec<String>,
    /// `run --tag`: a short label, shown by `ticketlab runs` (which can filter by it).
    pub tag: Option<String>,
    /// `run --note`: free text, shown in the report.
    pub note: Option<String>,
    /// The commit the program was built from (`None` when it was not built from a git
    /// checkout).
    pub engine_commit: Option<String>,
}

/// One stage in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestStage {
    /// Stage name.
    pub name: String,
    /// Stage kind.
    pub kind: StageKind,
    /// Plugin fingerprint (`kind/name@version`), or the plugin name when no fingerprint is known;
    /// `None` for rewind.
    pub plugin: Option<String>,
    /// Derived seed.
    pub seed: u64,
    /// Cache key.
    pub key: Option<String>,
    /// Wall time in seconds (`None`: did not finish).
    pub seconds: Option<f64>,
    /// Whether it was loaded from the store.
    pub cached: Option<bool>,
}

/// The content of `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// ticketlab's version.
    pub ticketlab_version: String,
    /// The commit the program was built from, `-modified` appended when its checkout had
    /// changes; absent when it was not built from a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_commit: Option<String>,
    /// Experiment name.
    pub experiment: String,
    /// The command that reproduces the run.
    pub command: String,
    /// The command line's `--set`, `--grid`, `--zip` and `--seeds`, as given.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// `run --tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `run --note`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the directory was written (UTC, `yyyy-mm-ddThh:mm:ssZ`).
    pub created_utc: String,
    /// Root seed.
    pub root_seed: u64,
    /// Backend label.
    pub backend: String,
    /// Worker threads.
    pub threads: usize,
    /// Distinct plugin fingerprints used, sorted.
    pub plugins: Vec<String>,
    /// Dynamic plugin libraries, as written in the experiment.
    pub plugin_libraries: Vec<String>,
    /// Sum of the stages' wall times, in seconds.
    pub total_seconds: f64,
    /// Every stage, in IR order.
    pub stages: Vec<ManifestStage>,
}

impl Manifest {
    /// The training stages that finished, as (computed by this run, loaded from the store).
    pub fn trainings(&self) -> (usize, usize) {
        let finished =
            self.stages.iter().filter(|s| s.kind == StageKind::Train && s.seconds.is_some());
        let loaded = finished.clone().filter(|s| s.cached == Some(true)).count();
        (finished.count() - loaded, loaded)
    }

    /// Builds the manifest of `outputs`, stamped with the current time.
    pub fn build(outputs: &RunOutputs<'_>) -> Self {
        let stages: Vec<ManifestStage> = outputs
            .ir
            .stages
            .iter()
            .map(|s| {
                let t = outputs.timings.get(&s.name);
                ManifestStage {
                    name: s.name.clone(),
                    kind: s.kind,
                    plugin: outputs.plugins.get(&s.name).cloned().or_else(|| s.plugin.clone()),
                    seed: s.seed,
                    key: outputs.keys.get(&s.name).cloned(),
                    seconds: t.map(|t| t.seconds),
                    cached: t.map(|t| t.cached),
                }
            })
            .collect();
        let mut plugins: Vec<String> = stages.iter().filter_map(|s| s.plugin.clone()).collect();
        plugins.sort();
        plugins.dedup();
        Self {
            ticketlab_version: env!("CARGO_PKG_VERSION").to_string(),
            engine_commit: outputs.invocation.engine_commit.clone(),
            experiment: outputs.ir.name.clone(),
            command: outputs.invocation.command.clone(),
            overrides: outputs.invocation.overrides.clone(),
            tag: outputs.invocation.tag.clone(),
            note: outputs.invocation.note.clone(),
            created_utc: utc_stamp(SystemTime::now(), true),
            root_seed: outputs.ir.seed,
            backend: outputs.backend.to_string(),
            threads: outputs.threads,
            plugins,
            plugin_libraries: outputs.ir.plugins.clone(),
            total_seconds: stages.iter().filter_map(|s| s.seconds).sum(),
            stages,
        }
    }
}

/// One line of `metrics.jsonl`: an evaluation record of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLine {
    /// The train stage's name.
    pub arm: String,
    /// The evaluation.
    #[serde(flatten)]
    pub record: EvalRecord,
}

/// The evaluation records of every trained arm, in IR order.
pub fn metric_lines(ir: &ExperimentIr, artifacts: &BTreeMap<String, Artifact>) -> Vec<MetricLine> {
    ir.stages
        .iter()
        .filter_map(|s| match artifacts.get(&s.name) {
            Some(Artifact::Run(run)) => Some((s, run)),
            _ => None,
        })
        .flat_map(|(s, run)| {
            run.records.iter().map(|r| MetricLine { arm: s.name.clone(), record: r.clone() })
        })
        .collect()
}

/// Renders `metrics.csv`, the long table: one row per evaluation per arm, with the arm's stage,
/// seed and swept values (from `summary`), then step, losses, accuracies and global norms.
pub fn metrics_csv(lines: &[MetricLine], summary: &Summary) -> Result<String> {
    let swept = crate::summary::swept_keys(summary.arms.iter().map(|a| &a.sweep));
    let mut header: Vec<String> = ["arm", "stage", "seed"].map(String::from).to_vec();
    header.extend(swept.iter().cloned());
    header.extend(
        ["step", "train_loss", "train_acc", "test_loss", "test_acc", "l1", "l2"].map(String::from),
    );
    let rows = lines.iter().map(|l| {
        let arm = summary.arm(&l.arm);
        let r = &l.record;
        let mut row = vec![
            l.arm.clone(),
            arm.map_or_else(|| written_name(&l.arm).to_string(), |a| a.stage.clone()),
            arm.map(|a| a.seed.to_string()).unwrap_or_default(),
        ];
        row.extend(swept.iter().map(|k| crate::summary::cell(arm.and_then(|a| a.sweep.get(k)))));
        row.extend([
            r.step.to_string(),
            r.train_loss.to_string(),
            crate::summary::opt(r.train_acc),
            r.test_loss.to_string(),
            crate::summary::opt(r.test_acc),
            r.norms.l1.to_string(),
            r.norms.l2.to_string(),
        ]);
        row
    });
    crate::summary::write_csv(names::METRICS_CSV, &header, rows)
}

/// Renders `metrics.jsonl`: one compact JSON object per line.
pub fn metrics_jsonl(lines: &[MetricLine]) -> Result<String> {
    let mut out = String::new();
    for l in lines {
        let s = serde_json::to_string(l)
            .map_err(|e| Error::Output { file: names::METRICS.into(), message: e.to_string() })?;
        out.push_str(&s);
        out.push('\n');
    }
    Ok(out)
}

/// Parses `metrics.jsonl` (the file at `path`, for error messages).
pub fn parse_metrics(path: &Path, text: &str) -> Result<Vec<MetricLine>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<MetricLine>(l).map_err(|e| {
                Error::data(path, format!("line {}: not an evaluation record ({e})", i + 1))
            })
        })
        .collect()
}

/// One entry of `masks.json`: what a prune stage produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskSummary {
    /// The prune stage's name.
    pub stage: String,
    /// The pruner (`name@version`).
    pub pruner: String,
    /// Pruning rate: the fraction of prunable weights removed.
    pub rate: f64,
    /// The step of the scored weights (`None`: the initialisation).
    pub scored_at: Option<u64>,
    /// Fraction of all prunable weights kept.
    pub density: f64,
    /// Kept and total counts per prunable layer.
    pub layers: BTreeMap<String, LayerDensity>,
    /// Warnings raised while pruning (layer collapse, an input already sparser than asked).
    pub warnings: Vec<String>,
}

/// The masks of every finished prune stage, in IR order.
pub fn mask_summaries(
    ir: &ExperimentIr,
    artifacts: &BTreeMap<String, Artifact>,
) -> Vec<MaskSummary> {
    ir.stages
        .iter()
        .filter_map(|s| match artifacts.get(&s.name) {
            Some(Artifact::Mask(m)) => Some(MaskSummary {
                stage: s.name.clone(),
                pruner: m.pruner.clone(),
                rate: m.rate,
                scored_at: m.scored_at,
                density: m.report.density,
                layers: m.report.layers.clone(),
                warnings: m.warnings.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Writes the data files of the run directory (creating `dir`): the files in the module table
/// but the figures, the report and the manifest, which [`finish_run_dir`] writes last.
pub fn write_run_dir(dir: &Path, outputs: &RunOutputs<'_>) -> Result<RunFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ir = outputs.ir;
    files::write(&dir.join(names::RESOLVED_JSON), ir.to_canonical_json())?;
    let yaml = serde_yaml::to_string(ir)
        .map_err(|e| Error::Output { file: names::RESOLVED_YAML.into(), message: e.to_string() })?;
    files::write(&dir.join(names::RESOLVED_YAML), yaml)?;
    let manifest = Manifest::build(outputs);
    let metrics = metric_lines(ir, outputs.artifacts);
    files::write(&dir.join(names::METRICS), metrics_jsonl(&metrics)?)?;
    let summary = Summary::build(ir, outputs.artifacts, outputs.registry);
    files::write(&dir.join(names::SUMMARY_CSV), summary.to_csv()?)?;
    files::write(&dir.join(names::METRICS_CSV), metrics_csv(&metrics, &summary)?)?;
    files::write_json(&dir.join(names::SUMMARY_JSON), &summary)?;
    let claims = crate::claims::judge(ir, &summary);
    if !ir.claims.is_empty() {
        files::write(&dir.join(names::CLAIMS_CSV), crate::claims::to_csv(&claims)?)?;
    }
    let masks = mask_summaries(ir, outputs.artifacts);
    files::write_json(&dir.join(names::MASKS), &masks)?;
    for stage in &ir.stages {
        if let Some(Artifact::Analysis(a)) = outputs.artifacts.get(&stage.name) {
            files::write_json(
                &dir.join(names::ANALYSES).join(format!("{}.json", files::file_safe(&stage.name))),
                &a.value,
            )?;
        }
    }
    Ok(RunFiles {
        dir: dir.to_path_buf(),
        ir: ir.clone(),
        manifest,
        summary,
        metrics,
        masks,
        claims,
    })
}

/// Completes a run directory: writes `manifest.json`, the mark of a finished run, and removes
/// the in-progress marker.
pub fn finish_run_dir(dir: &Path, manifest: &Manifest) -> Result<()> {
    files::write_json(&dir.join(names::MANIFEST), manifest)?;
    match std::fs::remove_file(dir.join(names::IN_PROGRESS)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(dir.join(names::IN_PROGRESS), e))
        }
        _ => Ok(()),
    }
}

/// `in_progress.json`: a run that has not finished its directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InProgress {
    /// The host running it.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it started (UTC, `yyyy-mm-ddThh:mm:ssZ`).
    pub started_utc: String,
    /// The experiment's name.
    pub experiment: String,
    /// The command that resumes it (the command as typed, with `--out` this directory).
    pub command: String,
    /// The cache key of every stage it needs (kept by `ticketlab store gc`).
    pub keys: Vec<String>,
    /// Why it stopped, when it was stopped on request (`SIGTERM`, `SIGINT`, ...).
    pub interrupted: Option<String>,
    /// The command line's overrides, as in the manifest.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// `run --tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl InProgress {
    /// Writes the marker into `dir` (creating it).
    pub fn write(&self, dir: &Path) -> Result<()> {
        files::write_json(&dir.join(names::IN_PROGRESS), self)
    }

    /// Whether the process that wrote the marker is gone: on this host, no process has its id
    /// (read from `/proc`); `false` where that cannot be told (another host, no `/proc`).
    pub fn process_gone(&self) -> bool {
        self.host == ticketlab_engine::store::host_name()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// The marker of `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(names::IN_PROGRESS);
        if !path.is_file() {
            return Ok(None);
        }
        files::read_json(&path).map(Some)
    }
}

/// The parsed files of one run directory: what a report is built from.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `experiment.resolved.json`.
    pub ir: ExperimentIr,
    /// `manifest.json`.
    pub manifest: Manifest,
    /// `summary.json`.
    pub summary: Summary,
    /// `metrics.jsonl`.
    pub metrics: Vec<MetricLine>,
    /// `masks.json` (empty when the run made no mask).
    pub masks: Vec<MaskSummary>,
    /// The experiment's claims judged on the summary (computed, not read: a run directory
    /// written before claims existed judges the claims of its IR, none).
    pub claims: Vec<ticketlab_api::claims::Judgement>,
}

impl RunFiles {
    /// Reads the files of the run directory `dir`; a missing or malformed file is an error
    /// naming it.
    pub fn read(dir: &Path) -> Result<Self> {
        let metrics_path = need(dir, names::METRICS)?;
        let masks_path = dir.join(names::MASKS);
        let summary = read_summary(dir)?;
        let metrics = parse_metrics(&metrics_path, &files::read(&metrics_path)?)?;
        check_complete(&metrics_path, &metrics, &summary)?;
        let ir: ExperimentIr = files::read_json(&need(dir, names::RESOLVED_JSON)?)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            claims: crate::claims::judge(&ir, &summary),
            ir,
            manifest: read_manifest(dir)?,
            summary,
            metrics,
            masks: if masks_path.is_file() { files::read_json(&masks_path)? } else { Vec::new() },
        })
    }
}

/// Refuses evaluations that stop short of what `summary` says each arm reached: an empty or
/// truncated `metrics.jsonl` (the file at `path`).
fn check_complete(path: &Path, metrics: &[MetricLine], summary: &Summary) -> Result<()> {
    for arm in &summary.arms {
        let last = metrics.iter().rev().find(|l| l.arm == arm.arm).map(|l| l.record.step);
        if last != Some(arm.run.steps) {
            let found = match last {
                None => "no evaluation of it".to_string(),
                Some(step) => format!("its evaluations only up to step {step}"),
            };
            return Err(Error::data(
                path,
                format!(
                    "summary.json says arm `{}` was evaluated up to step {}, but this file has {found}: it is empty or truncated. Rerun the experiment with the same command to rewrite the run directory (its stages load from the store)",
                    arm.arm, arm.run.steps
                ),
            ));
        }
    }
    Ok(())
}

/// The manifest of the run directory `dir` alone (listings that need no metrics).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    files::read_json(&need(dir, names::MANIFEST)?)
}

/// The summary of the run directory `dir` alone.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    files::read_json(&need(dir, names::SUMMARY_JSON)?)
}

/// The path of the file `name` of the run directory `dir`, or an error saying it is missing.
fn need(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::data(
        &path,
        format!("missing: {} is not a run directory written by `ticketlab run`", dir.display()),
    ))
}

/// The folder run directories go into by default, relative to the working directory.
pub const RUNS_DIR: &str = "runs";

/// Whether `dir` is a run directory, finished (it holds `manifest.json`) or not (it holds
/// `in_progress.json`).
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join(names::MANIFEST).is_file() || dir.join(names::IN_PROGRESS).is_file()
}

/// The run directories in `dirs` (none given: [`RUNS_DIR`]), finished or not: each folder that
/// is one ([`is_run_dir`]), and the run directories directly inside each other folder; sorted by
/// path.
pub fn find_runs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let default = [PathBuf::from(RUNS_DIR)];
    let dirs = if dirs.is_empty() { &default[..] } else { dirs };
    let mut found = Vec::new();
    for dir in dirs {
        if is_run_dir(dir) {
            found.push(dir.clone());
            continue;
        }
        let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::data(
                dir,
                format!("no such folder; name a run directory or a folder of them (`ticketlab run` writes them under {RUNS_DIR}/)"),
            ),
            _ => Error::io(dir, e),
        })?;
        for entry in entries.filter_map(|e| e.ok()) {
            if is_run_dir(&entry.path()) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The default run directory of experiment `name`: `runs/<name>-<UTC yyyymmddThhmmss>`
/// (relative to the current directory), the name made safe by [`files::file_safe`].
pub fn default_run_dir(name: &str) -> PathBuf {
    PathBuf::from(RUNS_DIR).join(format!(
        "{}-{}",
        files::file_safe(name),
        utc_stamp(SystemTime::now(), false)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketlab_api::metrics::Norms;

    #[test]
    fn default_dir_sanitises_the_name() {
        let d = default_run_dir("grid/a b");
        let s = d.to_string_lossy();
        // The sanitised name, a hash of the original (it was changed), and the timestamp.
        assert!(s.starts_with("runs/grid_a_b-"), "{s}");
        assert_eq!(d.file_name().unwrap().len(), "grid_a_b-".len() + 9 + 15);
    }

    #[test]
    fn nan_losses_round_trip_as_null() {
        let rec = EvalRecord {
            step: 3,
            train_loss: f64::NAN,
            train_acc: None,
            test_loss: 1.5,
            test_acc: Some(0.5),
            norms: Norms { l1: 1.0, l2: f64::INFINITY },
            layers: BTreeMap::new(),
        };
        let text = metrics_jsonl(&[MetricLine { arm: "a".into(), record: rec }]).unwrap();
        assert!(text.contains("\"train_loss\":null"), "{text}");
        let back = parse_metrics(Path::new("m"), &text).unwrap();
        assert!(back[0].record.train_loss.is_nan());
        assert_eq!(back[0].record.test_loss, 1.5);
        assert_eq!(back[0].arm, "a");
    }
}
