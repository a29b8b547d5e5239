//! What a run leaves behind for people: the run directory and progress display.
//!
//! - [`rundir`]: writes `experiment.resolved.{json,yaml}`, `manifest.json`, `metrics.jsonl`,
//!   `summary.{csv,json}`, then the figures and the report, into one directory.
//! - [`summary`]: the per-arm headline rows (schema in `SCHEMA.md`).
//! - [`figures`]: SVG figures under `figures/`.
//! - [`report`]: `report.md` and a self-contained `report.html`; regeneration and comparison of
//!   several run directories.
//! - [`progress`]: a [`RunEvents`](crate::engine::RunEvents) sink with progress bars or plain
//!   lines.

pub mod rundir;
pub mod figures;
pub mod summary;
pub mod progress;
mod files;
