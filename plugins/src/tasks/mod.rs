//! Built-in tasks (dataset plugins).

mod mnist;
mod modular;
mod synthetic;

pub use mnist::load_idx_pair;
pub use modular::{Operation, modular_dataset};
