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
//! - [`metrics`]: evaluation records and grokking metrics (t_mem, t_gen, tau_grok).
//! - [`seed`]: derivation of per-stage seeds from the experiment's root seed.
//! - [`error`]: the one error type, with the fix in every message.
//! - [`budget`]: memory budgets checked before a stage allocates.
//! - [`runtime`]: how this process runs stages (stop requests, plugin isolation): nothing a
//!   result depends on.
//! - [`text`]: aligned plain-text tables for the commands.
//!
//! The crates around it, in the direction data flows: `ticketlab-dsl` (file -> AST -> IR),
//! `ticketlab-engine` (IR -> plan -> stages -> store), `ticketlab-output` (store -> run
//! directory -> report -> figures), `ticketlab-testing` (pipeline snapshots), and the
//! `ticketlab` command-line program.

pub mod artifact;
pub mod budget;
pub mod data;
pub mod error;
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
