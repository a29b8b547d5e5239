//! ticketlab-core: the engine behind ticketlab.
//!
//! - [`tensor`]: the tensor backend on luminal 0.2.0 compiled graphs: graph building with
//!   run-time shapes, a reverse-mode autograd pass (double backward included), CPU kernels as
//!   luminal compiler passes, optimizers with PyTorch semantics, masks and training sessions.
//! - [`data`]: datasets as the engine sees them.
//! - [`plugin`]: plugin kinds, parameter schemas, the static registry and dynamic loading.
//! - [`ir`]: the checked, expanded experiment: a DAG of typed stages.
//! - [`artifact`]: what flows between stages (models, masks, runs, analyses).
//! - [`metrics`]: evaluation records and grokking metrics (t_mem, t_gen, tau_grok).
//! - [`engine`]: planner, content-addressed store and executor.
//! - [`output`]: the run directory: resolved experiment, manifest, metrics, summaries, figures,
//!   reports, and progress display.
//! - [`seed`]: derivation of per-stage seeds from the experiment's root seed.
//! - [`testing`]: snapshot testing of whole pipelines (rounded, redacted, stable values).

pub mod artifact;
pub mod data;
pub mod engine;
pub mod error;
pub mod ir;
pub mod json_float;
pub mod metrics;
pub mod output;
pub mod plugin;
pub mod pruning;
pub mod rewind;
pub mod seed;
pub mod tensor;
pub mod testing;

pub use error::{Error, Result};
#[doc(hidden)]
pub use inventory;
