//! What a run leaves behind for people: the run directory and progress display.
//!
//! - [`rundir`]: writes `experiment.resolved.{json,yaml}`, `manifest.json`, `metrics.jsonl`,
//!   `summary.{csv,json}`, then the figures and the report, into one directory.
//! - [`summary`]: the per-arm headline rows (schema in the README).
//! - [`doc`]: the small document model both report formats are rendered from.
//! - [`figures`]: SVG figures under `figures/`.
//! - [`report`]: `report.md` and a self-contained `report.html`; regeneration and comparison of
//!   several run directories.
//! - [`progress`]: a [`RunEvents`](crate::engine::RunEvents) sink with progress bars or plain
//!   lines.

pub mod doc;
pub mod figures;
pub mod progress;
pub mod report;
pub mod rundir;
pub mod summary;
mod files;
