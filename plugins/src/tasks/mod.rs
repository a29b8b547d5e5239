//! Built-in tasks (dataset plugins).

mod modular;

pub use modular::{Operation, modular_dataset};
