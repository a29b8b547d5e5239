//! File names inside a run directory.

/// The IR as canonical JSON.
pub const RESOLVED_JSON: &str = "experiment.resolved.json";
/// The IR as YAML.
pub const RESOLVED_YAML: &str = "experiment.resolved.yaml";
/// The manifest, written last: its presence means the run directory is complete.
pub const MANIFEST: &str = "manifest.json";
/// The marker of a run that has not written its manifest yet.
pub const IN_PROGRESS: &str = "in_progress.json";
/// Evaluation records.
pub const METRICS: &str = "metrics.jsonl";
/// The live log, appended while the run goes on ([`crate::live`]).
pub const LIVE: &str = "live.jsonl";
/// Evaluation records, long CSV.
pub const METRICS_CSV: &str = "metrics.csv";
/// Summary table, CSV.
pub const SUMMARY_CSV: &str = "summary.csv";
/// Summary table, JSON.
pub const SUMMARY_JSON: &str = "summary.json";
/// The claims judged: one row per reference per seed, then each verdict.
pub const CLAIMS_CSV: &str = "claims.csv";
/// Mask statistics.
pub const MASKS: &str = "masks.json";
/// Analysis outputs folder.
pub const ANALYSES: &str = "analyses";
/// Figures folder.
pub const FIGURES: &str = "figures";
/// Markdown report.
pub const REPORT_MD: &str = "report.md";
/// HTML report.
pub const REPORT_HTML: &str = "report.html";
