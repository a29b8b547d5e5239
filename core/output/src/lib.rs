//! ticketlab-output: what a run leaves behind for people, the run directory and the progress
//! display. It reads the engine's results and never feeds the engine.
//!
//! - [`rundir`]: writes `experiment.resolved.{json,yaml}`, `manifest.json`, `metrics.jsonl`,
//!   `summary.{csv,json}`, then the figures and the report, into one directory.
//! - [`summary`]: the per-arm headline rows (schema in the README).
//! - [`doc`]: the small document model both report formats are rendered from.
//! - [`figures`]: SVG figures under `figures/`.
//! - [`report`]: `report.md` and a self-contained `report.html`; regeneration and comparison of
//!   several run directories.
//! - [`progress`]: a [`RunEvents`](ticketlab_engine::RunEvents) sink with progress bars or plain
//!   lines.

pub mod doc;
pub mod figures;
mod files;
pub mod progress;
pub mod report;
pub mod rundir;
pub mod summary;

// The vocabulary the output modules share, imported once.
pub(crate) use ticketlab_api::{Error, Result, artifact, ir, metrics};
