//! Built-in analyses of runs, models and masks. Each documents the JSON value it produces.
//!
//! - `fourier_entropy`: periodicity of per-neuron effective weights (PAPER-SPEC 6.2).
//! - `jaccard`: how the magnitude mask moves between checkpoints (6.1).
//! - `graph_metrics`: spectral and relational-graph properties of pruned layers (6.3).
//! - `weight_norms`: L1 and L2 norms over training (5.3, figure 6).

mod fourier;
mod graph;
mod jaccard;
mod linalg;
mod norms;

pub use fourier::{code_cross_entropy, normalised_spectrum, shannon_entropy};
pub use graph::{average_clustering, average_shortest_path, relational_graph, singular_values};
pub use jaccard::{jaccard_distance, magnitude_mask};
pub use linalg::symmetric_eigenvalues;

#[cfg(test)]
mod tests;
