//! Built-in analyses of runs, models and masks. Each documents the JSON value it produces, and
//! the Fourier, Jaccard and LMC analyses hand the run directory their figures of it.
//!
//! - `fourier_entropy`: periodicity of per-neuron effective weights (PAPER-SPEC 6.2).
//! - `jaccard`: how the magnitude mask moves between checkpoints (6.1).
//! - `graph_metrics`: spectral and relational-graph properties of pruned layers (6.3).
//! - `weight_norms`: L1 and L2 norms over training (5.3, figure 6).
//! - `lmc`: linear mode connectivity of two trained states and its error barrier (Frankle et
//!   al. 2020).

mod fourier;
mod graph;
mod jaccard;
mod linalg;
mod lmc;
mod norms;

pub use fourier::{code_cross_entropy, normalised_spectrum, shannon_entropy};
pub use graph::{average_clustering, average_shortest_path, relational_graph, singular_values};
pub use jaccard::{jaccard_distance, magnitude_mask};
pub use linalg::symmetric_eigenvalues;

/// The per-run part of an analysis value `{"runs": {ARM: R, ...}, ...}`, as the Fourier and
/// Jaccard analyses write it, for drawing; `None` for a value of another shape.
fn runs_of<R: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Option<std::collections::BTreeMap<String, R>> {
    #[derive(serde::Deserialize)]
    struct Runs<R> {
        runs: std::collections::BTreeMap<String, R>,
    }
    serde_json::from_value::<Runs<R>>(value.clone()).ok().map(|v| v.runs)
}

#[cfg(test)]
mod tests;
