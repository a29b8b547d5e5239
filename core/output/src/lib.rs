//! ticketlab-output: what a run leaves behind for people, the run directory and the progress
//! display. It reads the engine's results and never feeds the engine.
//!
//! - [`write_run`]: a whole run directory, in the order data flows: [`rundir`] writes
//!   `experiment.resolved.{json,yaml}`, `metrics.jsonl`, `summary.{csv,json}` and
//!   `masks.json`, then [`figures`] draws from them (and from the artifacts), then [`report`]
//!   renders both, and `manifest.json` comes last, marking the directory complete.
//! - [`names`]: the file names of a run directory.
//! - [`summary`]: the per-arm headline rows (schema in the README).
//! - [`claims`]: the experiment's claims judged on the summary (`claims.csv`, the report's
//!   first table).
//! - [`doc`]: the small document model both report formats are rendered from.
//! - [`figures`]: SVG figures under `figures/`.
//! - [`report`]: `report.md` and a self-contained `report.html`; regeneration and comparison of
//!   several run directories.
//! - [`results`]: the generated part of an experiments folder's `RESULTS.md`, from several run
//!   directories (`ticketlab reproduce`).
//! - [`live`]: `live.jsonl`, the log a run appends to while it trains, and what `ticketlab
//!   watch` shows of it.
//! - [`tensorboard`]: a run's evaluations as TensorBoard event files (`ticketlab export
//!   --tensorboard`).
//! - [`progress`]: a [`RunEvents`](ticketlab_engine::RunEvents) sink with progress bars or plain
//!   lines.

pub mod claims;
pub mod differences;
pub mod doc;
pub mod figures;
pub mod files;
pub mod live;
pub mod names;
pub mod progress;
pub mod report;
pub mod results;
pub mod rundir;
pub mod summary;
pub mod tensorboard;

use std::path::Path;

use ticketlab_api::Result;

/// Writes the run directory `dir` of one execution: the data files, the figures, the report,
/// and last the manifest that marks it complete. Returns what it wrote.
pub fn write_run(dir: &Path, outputs: &rundir::RunOutputs<'_>) -> Result<rundir::RunFiles> {
    let run = rundir::write_run_dir(dir, outputs)?;
    let mut figs = figures::metric_figures(&run.summary, &run.metrics)?;
    figs.extend(figures::artifact_figures(outputs, &run.summary)?);
    figures::write_figures(dir, &figs)?;
    report::write(&run, &figs)?;
    rundir::finish_run_dir(dir, &run.manifest)?;
    Ok(run)
}
