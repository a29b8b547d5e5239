//! ticketlab-engine: from the IR to stored results, above the plugins.
//!
//! - [`planner`], [`batch`], [`key`], [`store`], [`lease`], [`executor`], [`events`]: running a
//!   plan; [`halving`]: running it rung by rung for successive halving.
//! - [`dylib`]: loading dynamic plugins over the C ABI of `ticketlab-abi`.
//! - [`weights_file`]: weights and masks in `.safetensors` and `.npz` files, out and in.
//!
//! It reads the vocabulary of `ticketlab-api`, computes with `ticketlab-tensor` (training graphs,
//! pruning and rewinding) and the plugins of a registry, and knows nothing of files, run
//! directories or figures (`ticketlab-output`).
//!
//! Running an experiment is three steps, each in its own module:
//!
//! 1. [`planner::plan`] walks the IR's stages in their (topological) order and gives every stage
//!    a content key ([`key`]) computed from what the stage does and the keys of what it reads;
//!    the plan also says which stages are already in the [`store`] and which train together.
//! 2. [`executor::execute`] runs the stages. A stage whose key is in the store is loaded, never
//!    recomputed; any other stage calls its plugin, and its result is written to the store
//!    atomically. Training stages keep a resumable state under the store's `partial/` folder
//!    while they run, so an interrupted run continues from its last saved state.
//! 3. Everything that happens is reported to a [`events::RunEvents`] sink (progress bars, plain
//!    log lines, or nothing); the executor returns every artifact so the caller can write a run
//!    directory from them.
//!
//! Results are bit-for-bit reproducible for the same keys, backend and thread count: the key
//! covers every input of a stage, and every stage is deterministic in its inputs and seed.

pub mod batch;
pub mod dylib;
pub mod events;
pub mod executor;
pub mod halving;
pub mod key;
pub mod lease;
pub mod plan;
pub mod planner;
pub mod store;
pub mod weights_file;

pub use events::{NoEvents, RunEvents, StageOutcome, StageReport};
pub use executor::{ExecOptions, Execution, execute};
pub use halving::execute_selecting;
pub use key::{Backend, StageKey};
pub use plan::{Plan, PlannedStage};
pub use planner::plan;
pub use store::Store;
