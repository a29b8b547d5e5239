//! ticketlab-api: the vocabulary that experiment files, plugins and the engine share.
//!
//! It depends on no engine, plotting, progress or testing crate, so a front end (the dsl) or a
//! plugin crate builds against it alone.
//!
//! - [`ir`]: the checked, expanded experiment: a DAG of typed stages.
//! - [`plugin`]: plugin kinds, parameters and their schemas, the trait each kind implements,
//!   and the registry (built-ins collected with [`register_plugin!`], dynamic libraries added
//!   by the engine's loader).
//! - [`tensor`]: host tensors and masks, architectures and the [`tensor::GraphBuilder`] they
//!   write their forward pass with (luminal 0.2.0 graphs with run-time shapes).
//! - [`data`]: datasets as the engine sees them.
//! - [`artifact`]: what flows between stages (models, masks, runs, analyses).
//! - [`metrics`]: evaluation records and grokking metrics (t_mem, t_gen, tau_grok, speed-ups).
//! - [`figure`]: the figures an analysis or report hands the run directory, free of any
//!   plotting library.
//! - [`seed`]: derivation of per-stage seeds from the experiment's root seed.
//! - [`error`]: the one error type, with the fix in every message.
//! - [`budget`]: memory budgets checked before a stage allocates.
//! - [`runtime`]: how a run computes (kernel threads, device, memory budget, stop requests,
//!   plugin isolation), built once by the caller and passed down.
//! - [`text`]: aligned plain-text tables and UTC times for the commands.
//!
//! The crates around it, in the direction data flows: `ticketlab-dsl` (file -> AST -> IR),
//! `ticketlab-tensor` (compiled graphs and the pruning math, below the plugins),
//! `ticketlab-plugins` (the built-in plugins), `ticketlab-engine` (IR -> plan -> stages ->
//! store, above the plugins), `ticketlab-output` (store -> run directory -> figures -> report),
//! `ticketlab-testing` (pipeline snapshots), and the `ticketlab` command-line program.

pub mod artifact;
pub mod budget;
pub mod claims;
pub mod data;
pub mod error;
pub mod figure;
pub mod ir;
pub mod json_float;
pub mod metrics;
pub mod plugin;
pub mod runtime;
pub mod seed;
pub mod tensor;
pub mod text;

pub use error::{Error, Result};
#[doc(hidden)]
pub use inventory;
