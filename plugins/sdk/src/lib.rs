//! The ticketlab plugin SDK: write a pruner or a task in one file, build it as a `cdylib`, and
//! use it from experiment files exactly like a built-in.
//!
//! ```
//! use ticketlab_plugin_sdk::{LayerView, ParamDecl, Params, Pruner, ScoreContext};
//!
//! #[derive(Default)]
//! struct Absolute;
//!
//! impl Pruner for Absolute {
//!     const NAME: &'static str = "absolute";
//!     const VERSION: &'static str = "0.1.0";
//!     const SUMMARY: &'static str = "|w|, as a dynamic plugin";
//!     fn params() -> Vec<ParamDecl> { vec![] }
//!     fn score(&self, _: &Params, layers: &[LayerView<'_>], _: &ScoreContext) -> Result<Vec<Vec<f32>>, String> {
//!         Ok(layers.iter().map(|l| l.weights.iter().map(|w| w.abs()).collect()).collect())
//!     }
//! }
//!
//! ticketlab_plugin_sdk::export_pruner!(Absolute);
//! ```
//!
//! # How it fits together
//!
//! - [`Pruner`] and [`Dataset`] are the safe traits a plugin implements. Parameters are declared
//!   with [`ParamDecl`]; ticketlab checks experiment files against them before anything runs and
//!   fills defaults, so [`Params`] getters only fail on a plugin's own mistakes.
//! - [`export_pruner!`], [`export_dataset!`] and [`export_plugins!`] define the two symbols
//!   ticketlab looks for: the ABI version (checked before anything else) and the entry function
//!   listing the library's plugins. The generated functions catch panics, so a panicking plugin
//!   is reported as an error and never takes ticketlab down.
//! - [`abi`] is the C ABI itself: `#[repr(C)]` descriptors, tensor views in, buffers out,
//!   status codes with messages. Only these types cross the library boundary: no Rust strings,
//!   vectors or trait objects, whose layout is not stable between compilations. Memory the plugin
//!   allocates is freed by the plugin (ticketlab calls back its `free_buf`).
//! - [`Rng`] is a small, fully specified generator so plugins can be seeded and reproducible
//!   without dependencies.
//!
//! What ticketlab does with the results: scores become masks in the core, which enforces the
//! mask invariants (only alive weights ranked, exact k, deterministic ties, monotone masks), so a
//! pruner only scores. Scores of the wrong count or with NaN are refused with an error naming
//! the library; datasets are checked for consistent shapes, finite inputs and valid labels.
//!
//! A library stays loaded for the life of the process (unloading Rust libraries is unsound
//! once they have run thread-local destructors), so a plugin may keep `'static` state.

// Exports `extern "C"` functions and reads the host's raw views.
#![allow(unsafe_code)]

pub use ticketlab_abi as abi;
#[doc(hidden)]
pub mod export;
mod params;
mod rng;

pub use params::{ParamDecl, ParamTy, Params};
pub use rng::{Rng, fnv1a64};
pub use serde_json;

/// One prunable layer as a pruner sees it.
#[derive(Debug, Clone, Copy)]
pub struct LayerView<'a> {
    /// Parameter name, e.g. `mlp.W_in`.
    pub name: &'a str,
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// The weights being scored (unmasked values), row-major.
    pub weights: &'a [f32],
    /// The current mask, one entry per weight: exactly 0.0 (already pruned) or 1.0 (alive).
    pub mask: &'a [f32],
}

impl LayerView<'_> {
    /// Number of weights.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// True for a layer without weights.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
}

/// Everything besides parameters and layers that a pruner may use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScoreContext {
    /// The prune stage's derived seed: seed all randomness with it (see [`Rng`]).
    pub seed: u64,
}

/// A pruner: one score per prunable weight, higher = more important = kept.
///
/// The core turns scores into a mask: it ranks only alive weights, keeps exactly the requested
/// number (globally or per layer, from the stage's `rate` and `scope`), breaks ties by layer
/// name then index, and never revives a pruned weight. Scores of pruned weights are ignored.
/// A dynamic pruner is called once per prune stage (built-in iterative pruners such as SynFlow
/// may score over several rounds; dynamic ones do not).
pub trait Pruner: Default {
    /// Name used in experiment files (`uses: NAME`). Lowercase letters, digits and `_`.
    const NAME: &'static str;
    /// Semantic version: bump it when scores change, so cached masks are recomputed.
    const VERSION: &'static str;
    /// One-line summary for `ticketlab plugins list`.
    const SUMMARY: &'static str;

    /// The parameter schema.
    fn params() -> Vec<ParamDecl>;

    /// Scores every weight of every layer: one `Vec` per layer, in the order of `layers`, each
    /// as long as its layer. Return `Err(message)` for input the pruner cannot handle; the
    /// message is shown to the user with the plugin's name.
    fn score(
        &self,
        params: &Params,
        layers: &[LayerView<'_>],
        ctx: &ScoreContext,
    ) -> Result<Vec<Vec<f32>>, String>;
}

/// What a task predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Class labels `0..n` (one per example).
    Classes(usize),
    /// Real-valued targets of this width (`dim` per example).
    Regression(usize),
}

/// Token structure of inputs that are one-hot tokens (`input_shape = [n_ctx, vocab]`), for
/// architectures that embed tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLayout {
    /// Vocabulary size (the one-hot width).
    pub vocab: usize,
    /// Tokens per example.
    pub n_ctx: usize,
}

/// One split of a dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitOut {
    /// Inputs, `n * prod(input_shape)` values, row-major.
    pub x: Vec<f32>,
    /// `n` class labels (as `f32`, each an integer below the class count) or `n * dim`
    /// regression targets.
    pub y: Vec<f32>,
}

/// A built dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetOut {
    /// Human-readable description, e.g. `(a-b) mod 23, 211 train / 318 test`.
    pub description: String,
    /// Shape of one example, e.g. `[2, p]` for two one-hot tokens.
    pub input_shape: Vec<usize>,
    /// Classes or regression.
    pub targets: TargetKind,
    /// Present for token tasks.
    pub tokens: Option<TokenLayout>,
    /// The training split.
    pub train: SplitOut,
    /// The held-out split.
    pub test: SplitOut,
}

/// A dataset (task) plugin.
pub trait Dataset: Default {
    /// Name used in experiment files (`uses: NAME`). Lowercase letters, digits and `_`.
    const NAME: &'static str;
    /// Semantic version: bump it when the data changes, so cached results are recomputed.
    const VERSION: &'static str;
    /// One-line summary for `ticketlab plugins list`.
    const SUMMARY: &'static str;

    /// The parameter schema.
    fn params() -> Vec<ParamDecl>;

    /// Builds the dataset; must be deterministic in `params` and `seed` (the stage's derived
    /// seed).
    fn build(&self, params: &Params, seed: u64) -> Result<DatasetOut, String>;
}

#[cfg(test)]
mod tests;
