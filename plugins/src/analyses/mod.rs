//! Built-in analyses of runs and masks. Each documents the JSON value it produces.

mod fourier;
mod graph;
mod jaccard;
mod linalg;
mod norms;

pub use fourier::{code_cross_entropy, normalised_spectrum, shannon_entropy};
pub use graph::{average_clustering, average_shortest_path};
pub use linalg::symmetric_eigenvalues;
