//! The stage IR: a checked, sweep-expanded experiment as a DAG of typed stages.
//!
//! Both front ends (YAML and the `.tlx` DSL) lower to [`ExperimentIr`]; the same experiment in
//! either form serialises to the same bytes with [`ExperimentIr::to_canonical_json`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plugin::{ParamSpec, ParamType, PluginKind};

/// The kinds of stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Builds a dataset (dataset plugin).
    Dataset,
    /// Initialises a model (architecture plugin).
    Model,
    /// Trains a model (trainer plugin).
    Train,
    /// Computes a mask (pruner plugin).
    Prune,
    /// Applies a mask to saved weights: rewinding, re-initialisation and norm-matched controls
    /// (built into the core; no plugin).
    Rewind,
    /// Computes an analysis (analysis plugin).
    Analyze,
    /// Compares runs (report plugin).
    Report,
}

/// Types of the artifacts flowing on edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// A dataset.
    Dataset,
    /// A model state.
    Model,
    /// A mask.
    Mask,
    /// A training run.
    Run,
    /// An analysis or report value.
    Analysis,
}

/// An input port of a stage kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Port {
    /// The port's name in experiment files (`inputs: { data: ... }`).
    pub name: &'static str,
    /// Artifact types accepted.
    pub accepts: &'static [ArtifactType],
    /// Whether the port must be connected by every stage of the kind (a prune stage's `data`
    /// is required only when its pruner needs data: `PrunerPlugin::needs_data`).
    pub required: bool,
    /// Whether several stages may be connected (a list).
    pub many: bool,
}

const fn port(
    name: &'static str,
    accepts: &'static [ArtifactType],
    required: bool,
    many: bool,
) -> Port {
    Port { name, accepts, required, many }
}

use ArtifactType as A;

impl StageKind {
    /// Every kind.
    pub const ALL: [StageKind; 7] = [
        StageKind::Dataset,
        StageKind::Model,
        StageKind::Train,
        StageKind::Prune,
        StageKind::Rewind,
        StageKind::Analyze,
        StageKind::Report,
    ];

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Dataset => "dataset",
            StageKind::Model => "model",
            StageKind::Train => "train",
            StageKind::Prune => "prune",
            StageKind::Rewind => "rewind",
            StageKind::Analyze => "analyze",
            StageKind::Report => "report",
        }
    }

    /// Parses [`StageKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The plugin kind a stage of this kind `uses`, if any.
    pub fn plugin_kind(self) -> Option<PluginKind> {
        match self {
            StageKind::Dataset => Some(PluginKind::Dataset),
            StageKind::Model => Some(PluginKind::Architecture),
            StageKind::Train => Some(PluginKind::Trainer),
            StageKind::Prune => Some(PluginKind::Pruner),
            StageKind::Rewind => None,
            StageKind::Analyze => Some(PluginKind::Analysis),
            StageKind::Report => Some(PluginKind::Report),
        }
    }

    /// The artifact type this kind produces.
    pub fn output(self) -> ArtifactType {
        match self {
            StageKind::Dataset => A::Dataset,
            StageKind::Model | StageKind::Rewind => A::Model,
            StageKind::Train => A::Run,
            StageKind::Prune => A::Mask,
            StageKind::Analyze | StageKind::Report => A::Analysis,
        }
    }

    /// Input ports.
    pub fn ports(self) -> &'static [Port] {
        const MODEL: &[Port] = &[port("data", &[A::Dataset], true, false)];
        const TRAIN: &[Port] =
            &[port("model", &[A::Model], true, false), port("data", &[A::Dataset], true, false)];
        // `data` is required of the stages whose pruner reads it
        // (`PrunerPlugin::needs_data`), which the checker asks the plugin.
        const PRUNE: &[Port] = &[
            port("from", &[A::Model, A::Run], true, false),
            port("data", &[A::Dataset], false, false),
            port("mask", &[A::Mask], false, false),
        ];
        const REWIND: &[Port] = &[
            port("from", &[A::Model, A::Run], true, false),
            port("mask", &[A::Mask], false, false),
            port("data", &[A::Dataset], false, false),
        ];
        const ANALYZE: &[Port] = &[
            port("runs", &[A::Run], false, true),
            port("masks", &[A::Mask], false, true),
            port("models", &[A::Model], false, true),
            port("data", &[A::Dataset], false, false),
        ];
        match self {
            StageKind::Dataset => &[],
            StageKind::Model => MODEL,
            StageKind::Train => TRAIN,
            StageKind::Prune => PRUNE,
            StageKind::Rewind => REWIND,
            StageKind::Analyze | StageKind::Report => ANALYZE,
        }
    }

    /// Parameters the core itself reads for this kind, in addition to the plugin's own.
    pub fn core_params(self) -> &'static [ParamSpec] {
        match self {
            StageKind::Model => MODEL_PARAMS,
            StageKind::Prune => PRUNE_PARAMS,
            StageKind::Rewind => REWIND_PARAMS,
            _ => &[],
        }
    }
}

/// Parameters of every model stage, read by the core.
pub const MODEL_PARAMS: &[ParamSpec] = &[
    ParamSpec::new(WEIGHTS, ParamType::Str, "start from the weights in this .safetensors or .npz file instead of drawing them (a network trained elsewhere, or one `ticketlab export` wrote): every parameter of the architecture by its name (`ticketlab plugins` shows them), float32 or float64, with its shape; a relative path is read from the experiment file's directory, and the file's content is part of the cache key; \"\" = draw them with the stage's seed")
        .default("\"\"")
        .in_key_unless_default(),
    ParamSpec::new("weights_prefix", ParamType::Str, "with `weights`: read the tensor PREFIX + each parameter's name, ignoring the file's other tensors (`final/` in a file `ticketlab export --what init,final,mask` wrote)")
        .default("\"\"")
        .in_key_unless_default(),
];

/// The model parameter naming a weights file to start from.
pub const WEIGHTS: &str = "weights";

/// Parameters of every prune stage, read by the core's mask logic.
pub const PRUNE_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("rate", ParamType::Float, "pruning rate: the fraction of prunable weights removed (the paper's k; the reference code's `sparsity` is 1 - rate)")
        .default("0.6")
        .range_exclusive(0.0, 1.0),
    ParamSpec::new("distribution", ParamType::Choice(&["global", "uniform", "erk", "er"]), "how the kept weights spread over the layers: `global` ranks all prunable weights together; `uniform` keeps the same fraction of every layer; `erk` (Evci et al. 2020) gives layer l a density proportional to (sum of its dimensions) / (product of its dimensions), scaled so the total matches `rate`, any layer that would exceed 100% dense and the others rescaled; `er` the same from the first two dimensions only (no kernel terms)")
        .default("\"global\"")
        .in_key_unless_default(),
    ParamSpec::new("structure", ParamType::Choice(&["unstructured", "neurons", "n_of_m", "blocks"]), "which weights are kept or removed together: each alone; `neurons` (a row of the weight matrix, a neuron's incoming weights, kept or removed whole); `n_of_m` (the `n` best of every `m` consecutive weights along the input dimension, as 2:4 sparsity; the density is n/m and `rate` is not used); `blocks` (tiles of `block` = [rows, columns]). A group's score is the sum of its weights' scores; the mask keeps whole groups within the count `rate` allows and records the rate it realises")
        .default("\"unstructured\"")
        .in_key_unless_default(),
    ParamSpec::new("n", ParamType::Int, "`structure: n_of_m`: weights kept in every group of `m`").default("2").min(1.0).in_key_unless_default(),
    ParamSpec::new("m", ParamType::Int, "`structure: n_of_m`: the group length along the input dimension").default("4").min(2.0).in_key_unless_default(),
    ParamSpec::new("block", ParamType::IntList, "`structure: blocks`: the tile, [rows, columns]").default("[4, 4]").min(1.0).in_key_unless_default(),
    ParamSpec::new("scope", ParamType::Choice(&["global", "layerwise"]), "the older spelling of `distribution`: `layerwise` is `distribution: uniform`")
        .default("\"global\""),
    ParamSpec::new("at", ParamType::WeightsAt, "weights to score when `from` is a run: `final`, `init`, or a checkpoint step such as `2000`")
        .default("\"final\""),
    ParamSpec::new("schedule", ParamType::Choice(&["exponential", "linear"]), "density schedule across rounds of iterative pruners")
        .default("\"exponential\""),
    ParamSpec::new("on_collapse", ParamType::Choice(&["warn", "error"]), "what to do when a layer ends at density 0")
        .default("\"warn\""),
    ParamSpec::new(LEVELS, ParamType::Int, "iterative magnitude pruning as OpenLTH: N levels of prune, rewind (the rewind stage that reads this mask) and retrain (the train stage that reads that rewind), each level pruning `rate` of the weights the previous level kept; level L's copies are named `stage[STAGE.level=L]`")
        .default("1")
        .range(1.0, 100.0),
];

/// The prune parameter that repeats prune, rewind and retrain; the sweep expansion consumes it.
pub const LEVELS: &str = "levels";

/// Parameters of rewind stages.
pub const REWIND_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("to", ParamType::WeightsAt, "weights to start from when `from` is a run: `init` or a checkpoint step such as `2000`")
        .default("\"init\""),
    ParamSpec::new("mode", ParamType::Choice(&["rewind", "reinit", "norm_l1", "norm_l2"]), "`rewind`: masked saved weights; `reinit`: masked fresh initialisation (new seed); `norm_l1`/`norm_l2`: dense weights scaled by r_p = ||w*m||_p / ||w||_p (needs `mask`)")
        .default("\"rewind\""),
];

/// One stage of an expanded experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageIr {
    /// Unique name; sweep points append `[key=value,...]`, seed repeats `@seedN`.
    pub name: String,
    /// Kind.
    pub kind: StageKind,
    /// Plugin name (absent for rewind).
    pub plugin: Option<String>,
    /// Parameters: core and plugin parameters with every default filled, sorted.
    pub params: BTreeMap<String, Value>,
    /// Connected inputs: port name to producing stage names.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// Derived seed ([`crate::seed::derive`] of the root seed and this name).
    pub seed: u64,
    /// The sweep point this stage belongs to (empty when not swept).
    pub sweep: BTreeMap<String, Value>,
}

impl StageIr {
    /// The files the core itself reads for this stage (a model stage's `weights`), resolved
    /// against `base_dir`, the experiment file's directory.
    pub fn core_input_files(&self, base_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        match (self.kind, self.params.get(WEIGHTS).and_then(Value::as_str)) {
            (StageKind::Model, Some(file)) if !file.is_empty() => vec![base_dir.join(file)],
            _ => Vec::new(),
        }
    }
}

/// The name a stage has in its experiment file: `name` without the sweep point
/// (`[key=value,...]`) and seed repeat (`@seedN`) that sweep expansion appends.
pub fn written_name(name: &str) -> &str {
    name.split(['[', '@']).next().unwrap_or(name)
}

/// A checked, expanded experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentIr {
    /// Experiment name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// Root seed.
    pub seed: u64,
    /// Dynamic plugin libraries to load, as written (resolved against the file's directory).
    pub plugins: Vec<String>,
    /// Stages in a deterministic topological order (ties by name).
    pub stages: Vec<StageIr>,
    /// The claims the file states about its results, in file order (checked against the
    /// stages; never part of a stage's cache key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimIr>,
}

/// A claim of the experiment file (`claims:`): a condition on the results, judged after
/// every run ([`crate::claims`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimIr {
    /// The claim's name (its key under `claims:`).
    pub name: String,
    /// The claim in words, for reports (empty when not written).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The condition, in the claims language.
    pub holds: String,
    /// How the seeds' verdicts combine.
    #[serde(default)]
    pub seeds: crate::claims::SeedRule,
}

impl ExperimentIr {
    /// The canonical serialisation: pretty JSON with sorted maps, newline-terminated.
    pub fn to_canonical_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("IR serialises");
        s.push('\n');
        s
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&StageIr> {
        self.stages.iter().find(|s| s.name == name)
    }
}
