//! ticketlab-engine: from the IR to stored results.
//!
//! - [`tensor`]: compiled training graphs on luminal 0.2.0: autograd (double backward
//!   included), graph passes (row narrowing, matrix-chain reassociation, token gathers), CPU
//!   kernels, optimizers with PyTorch semantics, evaluation and training sessions.
//! - [`pruning`] and [`rewind`]: the prune and rewind stages' computations.
//! - [`dylib`]: loading dynamic plugins over the C ABI of `ticketlab-abi`.
//! - [`planner`], [`key`], [`store`], [`lease`], [`executor`], [`events`]: running a plan.
//!
//! It reads the vocabulary of `ticketlab-api` and knows nothing of files, run directories or
//! figures (`ticketlab-output`).
//!
//! Running an experiment is three steps, each in its own module:
//!
//! 1. [`planner::plan`] walks the IR's stages in their (topological) order and gives every stage
//!    a content key ([`key`]) computed from what the stage does and the keys of what it reads;
//!    the plan also says which stages are already in the [`store`].
//! 2. [`executor::execute`] runs the stages in order. A stage whose key is in the store is
//!    loaded, never recomputed; any other stage calls its plugin, and its result is written to
//!    the store atomically before the next stage starts. Training stages keep a resumable state
//!    under the store's `partial/` folder while they run, so an interrupted run continues from
//!    its last checkpoint.
//! 3. Everything that happens is reported to a [`events::RunEvents`] sink (progress bars, plain
//!    log lines, or nothing); the executor returns every artifact so the caller can write a run
//!    directory from them.
//!
//! Results are bit-for-bit reproducible for the same keys, backend and thread count: the key
//! covers every input of a stage, and every stage is deterministic in its inputs and seed.

pub mod dylib;
pub mod events;
pub mod executor;
pub mod key;
pub mod lease;
pub mod planner;
pub mod pruning;
pub mod rewind;
pub mod store;
pub mod tensor;

pub use events::{NoEvents, RunEvents, StageOutcome, StageReport};
pub use executor::{ExecOptions, Execution, execute};
pub use key::{Backend, StageKey};
pub use planner::{Plan, PlannedStage, plan};
pub use store::Store;

// The vocabulary the engine's modules share, imported once.
pub(crate) use ticketlab_api::{Error, Result};
pub(crate) use ticketlab_api::{artifact, data, error, ir, metrics, plugin};
