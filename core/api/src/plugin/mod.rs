//! Plugins: kinds, parameter schemas, the traits each kind implements, and registration.
//!
//! Built-in plugins register statically with [`register_plugin!`] (over `inventory::submit!`);
//! dynamic plugins are cdylibs built with `ticketlab-plugin-sdk` and added by the engine's
//! loader (`ticketlab_engine::dylib`) over the C ABI of `ticketlab-abi`. Both end up in one
//! [`registry::Registry`].

pub mod describe;
pub mod params;
pub mod registry;
pub mod schema;

pub use params::Params;
pub use schema::{InKey, ParamSpec, ParamType, SavedWeights};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::artifact::{AnalysisArtifact, MaskArtifact, ModelArtifact, RunArtifact};
use crate::budget::Budget;
use crate::data::{Dataset, DatasetInfo, DatasetShape};
use crate::figure::{FigureContext, FigureSpec};
use crate::metrics::EvalRecord;
use crate::runtime::Runtime;
use crate::tensor::{Architecture, MaskSet, NamedTensors};

/// The kinds of plugin, one per kind of stage that calls a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Builds a task's data.
    Dataset,
    /// Defines a network and its initialisation.
    Architecture,
    /// Trains a model.
    Trainer,
    /// Scores weights for pruning.
    Pruner,
    /// Computes an analysis of runs, models or masks.
    Analysis,
    /// Renders a comparison of runs.
    Report,
}

impl PluginKind {
    /// Every kind, in display order.
    pub const ALL: [PluginKind; 6] = [
        PluginKind::Dataset,
        PluginKind::Architecture,
        PluginKind::Trainer,
        PluginKind::Pruner,
        PluginKind::Analysis,
        PluginKind::Report,
    ];

    /// The lowercase name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Dataset => "dataset",
            PluginKind::Architecture => "architecture",
            PluginKind::Trainer => "trainer",
            PluginKind::Pruner => "pruner",
            PluginKind::Analysis => "analysis",
            PluginKind::Report => "report",
        }
    }

    /// Parses [`PluginKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every stage's plugin call gets besides its parameters.
#[derive(Debug, Clone)]
pub struct StageContext {
    /// The stage's (expanded) name.
    pub stage: String,
    /// The stage's derived seed (see [`crate::seed`]).
    pub seed: u64,
    /// How this process runs stages: among others the directory relative data paths resolve
    /// against ([`Runtime::base_dir`]), the device, stop requests and plugin isolation.
    pub runtime: Runtime,
}

impl StageContext {
    /// The context of stage `stage` with seed `seed`, reading relative paths from `base_dir`,
    /// with the default [`Runtime`].
    pub fn new(
        stage: impl Into<String>,
        seed: u64,
        base_dir: impl Into<std::path::PathBuf>,
    ) -> Self {
        let runtime = Runtime { base_dir: base_dir.into(), ..Runtime::default() };
        Self { stage: stage.into(), seed, runtime }
    }
}

/// A dataset (task) plugin.
pub trait DatasetPlugin: Send + Sync {
    /// Builds the dataset. Must be deterministic in `params` and `ctx.seed`.
    fn build(&self, params: &Params, ctx: &StageContext) -> Result<Dataset>;

    /// Refuses values that cannot build a dataset because of how they combine (a split left
    /// empty, a size beyond what the task is built for), cheaply and before anything runs: the
    /// checker calls it with every value known and reports an [`Error::Param`] at that
    /// parameter. The default accepts everything.
    ///
    /// [`Error::Param`]: crate::Error::Param
    fn check(&self, _params: &Params) -> Result<()> {
        Ok(())
    }

    /// The shapes and split sizes `params` will give, without building anything, for memory
    /// estimates before anything runs; `None` (the default) when they cannot be known cheaply.
    fn shape(&self, _params: &Params) -> Option<DatasetShape> {
        None
    }

    /// The files `params` make the dataset read, resolved against `base_dir` (the experiment
    /// file's directory). The stage's cache key covers their contents, so an edited file gives a
    /// new key and the stages that depend on it are computed again. The default: none.
    fn input_files(&self, _params: &Params, _base_dir: &Path) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Whether the result depends on the stage's seed with these parameters. A plugin that draws
    /// no random numbers returns `false`, and the stage's cache key then leaves the seed out, so a
    /// copy of the stage in a sweep or seed repeat (same parameters and inputs, another seed)
    /// reuses the stored result. The default, `true`, is always safe.
    fn uses_seed(&self, _params: &Params) -> bool {
        true
    }
}

/// An architecture plugin.
pub trait ArchitecturePlugin: Send + Sync {
    /// Builds the architecture for a dataset's shapes.
    fn build(&self, params: &Params, info: &DatasetInfo) -> Result<Box<dyn Architecture>>;
}

/// Called by trainers as training progresses (from the thread that trains the arm, so it is
/// `Send`).
pub trait TrainObserver: Send {
    /// After each evaluation.
    fn on_eval(&mut self, record: &EvalRecord, total_steps: u64);
    /// A resumable state is available; the observer may persist it.
    fn on_checkpoint(&mut self, state: &TrainState) -> Result<()>;
    /// Whether training should stop at `step` (a step boundary, before that step is taken):
    /// the trainer then offers the state at `step` to [`on_checkpoint`](Self::on_checkpoint) and
    /// ends with [`Error::Interrupted`](crate::Error::Interrupted). The default never stops.
    fn stop_requested(&self, _step: u64) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl TrainObserver for NoObserver {
    fn on_eval(&mut self, _: &EvalRecord, _: u64) {}
    fn on_checkpoint(&mut self, _: &TrainState) -> Result<()> {
        Ok(())
    }
}

/// Everything needed to continue an interrupted training run bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps taken.
    pub step: u64,
    /// Current weights.
    pub params: NamedTensors,
    /// Optimizer state by name (e.g. `exp_avg/<param>`).
    pub optimizer: NamedTensors,
    /// Evaluations so far.
    pub records: Vec<EvalRecord>,
    /// Checkpoints saved so far.
    pub checkpoints: std::collections::BTreeMap<u64, NamedTensors>,
    /// RNG state for minibatch order (the next draw's counter).
    pub rng_counter: u64,
}

/// What a trainer is asked to do.
pub struct TrainJob<'a> {
    /// The network.
    pub arch: &'a dyn Architecture,
    /// Starting weights and mask.
    pub init: &'a ModelArtifact,
    /// The data.
    pub data: &'a Dataset,
    /// Stage context (seed, name).
    pub ctx: &'a StageContext,
    /// A state to resume from, if a previous attempt was interrupted.
    pub resume: Option<TrainState>,
    /// Progress and checkpoint sink.
    pub observer: &'a mut dyn TrainObserver,
}

/// One arm of a batch given to [`TrainerPlugin::train_arms`]: a train stage's parameters and job.
pub struct ArmJob<'a> {
    /// The stage's parameters.
    pub params: &'a Params,
    /// What to train.
    pub job: TrainJob<'a>,
}

/// A trainer plugin.
pub trait TrainerPlugin: Send + Sync {
    /// Trains and returns the run.
    fn train(&self, params: &Params, job: TrainJob<'_>) -> Result<RunArtifact>;

    /// The parameters that must be equal for train stages to be trained together by
    /// [`train_arms`](Self::train_arms) (all of them but those each arm may have its own of, such
    /// as the learning rate); `None` (the default) when these parameters cannot be batched.
    fn batch_key(&self, _params: &Params) -> Option<Params> {
        None
    }

    /// Trains several arms at once: stages whose architectures have the same shapes, that read
    /// the same data, agree on [`batch_key`](Self::batch_key), resume from the same step and
    /// mask the same parameters. Each arm's result must be the one [`train`](Self::train) gives
    /// it alone; one result per arm, in order, so an arm that fails fails alone. It is called
    /// with the kernel threads of every executor worker the batch holds in scope
    /// (`ticketlab_tensor::kernels::threads` on the calling thread), to split the arms over.
    /// The default trains them one after another.
    fn train_arms(&self, arms: Vec<ArmJob<'_>>) -> Vec<Result<RunArtifact>> {
        arms.into_iter().map(|arm| self.train(arm.params, arm.job)).collect()
    }

    /// The bytes a run with `params` keeps in memory for a model of `model`'s size, checked
    /// against `budget`: an [`Error::Param`](crate::Error::Param) at the parameter to change when
    /// it is too much, or at the key `model` when the model is too large to train at all (the
    /// estimate then reports it at the model stage's sizes). `None` (the default) when the
    /// trainer cannot say.
    fn memory(
        &self,
        _params: &Params,
        _model: &ModelSize,
        _budget: &Budget,
    ) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Whether the result depends on the stage's seed with these parameters. A plugin that draws
    /// no random numbers returns `false`, and the stage's cache key then leaves the seed out, so a
    /// copy of the stage in a sweep or seed repeat (same parameters and inputs, another seed)
    /// reuses the stored result. The default, `true`, is always safe.
    fn uses_seed(&self, _params: &Params) -> bool {
        true
    }
}

/// The size of what a trainer trains: for memory estimates before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSize {
    /// Weights, in all.
    pub weights: u64,
    /// Weight tensors.
    pub tensors: u64,
    /// Training examples.
    pub examples: u64,
}

/// What a pruner sees when scoring (the one context type of pruners: the engine's
/// `MaskRequest` carries one).
#[derive(Clone, Copy)]
pub struct PruneContext<'a> {
    /// The network.
    pub arch: &'a dyn Architecture,
    /// The weights being scored (checkpoint or initialisation), unmasked values.
    pub params: &'a NamedTensors,
    /// The current mask (all ones for a dense model). Already-pruned entries are 0.
    pub mask: &'a MaskSet,
    /// A reference mask for controls (e.g. the mask to shuffle), if the stage has one.
    pub reference_mask: Option<&'a MaskSet>,
    /// The dataset connected to the stage's `data` input: always there for a pruner that
    /// [needs data](PrunerPlugin::needs_data), `None` when the stage connects none.
    pub data: Option<&'a Dataset>,
    /// Stage context (seed).
    pub ctx: &'a StageContext,
    /// Which round of an iterative pruner this is (0-based) and how many rounds there are.
    pub round: (usize, usize),
}

/// Scores returned by a pruner.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// One score tensor per prunable parameter (same shapes). Higher = more important.
    pub scores: NamedTensors,
    /// For controls that fix the kept count per layer (e.g. shuffled masks): overrides the
    /// global/layer-wise budget with an exact count per layer.
    pub keep_per_layer: Option<std::collections::BTreeMap<String, usize>>,
}

/// A pruner plugin: scores weights; the core turns scores into a mask, enforcing the
/// invariants (monotone masks, pruned weights excluded from ranking, deterministic ties, exact k).
pub trait PrunerPlugin: Send + Sync {
    /// Scores every prunable weight.
    fn score(&self, params: &Params, ctx: &PruneContext<'_>) -> Result<Scores>;
    /// Number of scoring rounds (iterative pruners), default 1.
    fn rounds(&self, _params: &Params) -> usize {
        1
    }

    /// Whether the result depends on the stage's seed with these parameters. A plugin that draws
    /// no random numbers returns `false`, and the stage's cache key then leaves the seed out, so a
    /// copy of the stage in a sweep or seed repeat (same parameters and inputs, another seed)
    /// reuses the stored result. The default, `true`, is always safe.
    fn uses_seed(&self, _params: &Params) -> bool {
        true
    }

    /// Whether scoring with these parameters reads the dataset ([`PruneContext::data`]). A
    /// prune stage must connect its `data` input only for a pruner that does: the checker
    /// refuses a file that leaves it out, and the engine passes `Some` dataset whenever this
    /// says `true`. A pruner that scores from the weights alone (magnitude, random) returns
    /// `false`. The default, `true`, is always safe.
    fn needs_data(&self, _params: &Params) -> bool {
        true
    }
}

/// Inputs of an analysis or report stage, by input name.
pub struct AnalysisInputs<'a> {
    /// Runs, with the stage name that produced them.
    pub runs: Vec<(&'a str, &'a RunArtifact)>,
    /// Masks.
    pub masks: Vec<(&'a str, &'a MaskArtifact)>,
    /// Models.
    pub models: Vec<(&'a str, &'a ModelArtifact)>,
    /// The dataset, if connected.
    pub data: Option<&'a Dataset>,
    /// Architectures needed to interpret models (rebuilt from their specs).
    pub arch: Option<&'a dyn Architecture>,
    /// Stage context.
    pub ctx: &'a StageContext,
}

/// An analysis plugin.
pub trait AnalysisPlugin: Send + Sync {
    /// Computes the analysis.
    fn analyze(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact>;

    /// The run directory's figures of `value`, a value this analysis computed (see
    /// [`crate::figure`]); a value of another shape gives none. The default draws nothing.
    fn figures(&self, _value: &serde_json::Value, _ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        Vec::new()
    }
}

/// A report plugin: compares runs; its value is rendered in the run directory's report.
pub trait ReportPlugin: Send + Sync {
    /// Builds the comparison.
    fn report(&self, params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact>;

    /// The run directory's figures of `value`, a value this report built (see
    /// [`crate::figure`]); a value of another shape gives none. The default draws nothing.
    fn figures(&self, _value: &serde_json::Value, _ctx: &FigureContext<'_>) -> Vec<FigureSpec> {
        Vec::new()
    }

    /// The arms `value`, a value this report built, measures against a baseline, with their
    /// speed-ups: the `baseline` and `speedup_t_gen` of those arms in `summary.json`. A value of
    /// another shape gives none, as does the default.
    fn comparisons(&self, _value: &serde_json::Value) -> Vec<Comparison> {
        Vec::new()
    }
}

/// What a report says of one arm it measures against a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The arm (a train stage's name).
    pub arm: String,
    /// The arm it is measured against.
    pub baseline: String,
    /// The arm's [`speedup_t_gen`](crate::metrics::speedup_t_gen) against the baseline.
    pub speedup_t_gen: Option<f64>,
}

/// How to make an instance of a built-in plugin (plain fn pointers: inventory entries are const).
#[derive(Clone, Copy)]
pub enum PluginCtor {
    /// A dataset plugin.
    Dataset(fn() -> Box<dyn DatasetPlugin>),
    /// An architecture plugin.
    Architecture(fn() -> Box<dyn ArchitecturePlugin>),
    /// A trainer plugin.
    Trainer(fn() -> Box<dyn TrainerPlugin>),
    /// A pruner plugin.
    Pruner(fn() -> Box<dyn PrunerPlugin>),
    /// An analysis plugin.
    Analysis(fn() -> Box<dyn AnalysisPlugin>),
    /// A report plugin.
    Report(fn() -> Box<dyn ReportPlugin>),
}

impl PluginCtor {
    /// The kind this constructor makes.
    pub fn kind(&self) -> PluginKind {
        match self {
            PluginCtor::Dataset(_) => PluginKind::Dataset,
            PluginCtor::Architecture(_) => PluginKind::Architecture,
            PluginCtor::Trainer(_) => PluginKind::Trainer,
            PluginCtor::Pruner(_) => PluginKind::Pruner,
            PluginCtor::Analysis(_) => PluginKind::Analysis,
            PluginCtor::Report(_) => PluginKind::Report,
        }
    }
}

/// A built-in plugin's static description, submitted with [`register_plugin!`].
pub struct PluginDescriptor {
    /// Unique (per kind) name used in experiment files.
    pub name: &'static str,
    /// Semantic version; enters cache keys.
    pub version: &'static str,
    /// One-line summary for `ticketlab plugins list`.
    pub summary: &'static str,
    /// Parameter schema.
    pub params: &'static [ParamSpec],
    /// Constructor; also gives the kind.
    pub make: PluginCtor,
    /// The module that registered it (`module_path!()` at the [`register_plugin!`] call), so
    /// that a duplicate registration can name both places.
    pub module: &'static str,
}

inventory::collect!(PluginDescriptor);

/// Registers a built-in plugin.
///
/// ```ignore
/// ticketlab_api::register_plugin! {
///     Pruner, "magnitude", "1.0.0", "Global or layer-wise |w|", MAGNITUDE_PARAMS, Magnitude
/// }
/// ```
/// `Magnitude` must implement `Default` and the kind's trait.
#[macro_export]
macro_rules! register_plugin {
    ($kind:ident, $name:expr, $version:expr, $summary:expr, $params:expr, $ty:ty) => {
        $crate::inventory::submit! {
            $crate::plugin::PluginDescriptor {
                name: $name,
                version: $version,
                summary: $summary,
                params: $params,
                make: $crate::plugin::PluginCtor::$kind({
                    fn make() -> $crate::__plugin_box!($kind) {
                        Box::new(<$ty as ::core::default::Default>::default())
                    }
                    make
                }),
                module: ::core::module_path!(),
            }
        }
    };
}

/// Maps a kind identifier to its boxed trait object (used by [`register_plugin!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_box {
    (Dataset) => { Box<dyn $crate::plugin::DatasetPlugin> };
    (Architecture) => { Box<dyn $crate::plugin::ArchitecturePlugin> };
    (Trainer) => { Box<dyn $crate::plugin::TrainerPlugin> };
    (Pruner) => { Box<dyn $crate::plugin::PrunerPlugin> };
    (Analysis) => { Box<dyn $crate::plugin::AnalysisPlugin> };
    (Report) => { Box<dyn $crate::plugin::ReportPlugin> };
}
