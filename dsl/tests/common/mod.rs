//! Shared test helpers: a registry of stand-in plugins with the built-in plugins' schemas.
//!
//! The front end cannot depend on the plugins crate, so these stand-ins copy the parameter
//! names, types, defaults and ranges of the real built-ins; their methods are never called.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ticketlab_core::artifact::{AnalysisArtifact, RunArtifact};
use ticketlab_core::data::{Dataset, DatasetInfo};
use ticketlab_core::plugin::registry::{Origin, PluginEntry, PluginInstance, Registry};
use ticketlab_core::plugin::{
    AnalysisInputs, AnalysisPlugin, ArchitecturePlugin, DatasetPlugin, ParamSpec, ParamType, Params, PluginKind,
    PruneContext, PrunerPlugin, ReportPlugin, Scores, StageContext, TrainJob, TrainerPlugin,
};
use ticketlab_core::tensor::Architecture;
use ticketlab_core::{Error, Result};

struct Stub;

fn never<T>() -> Result<T> {
    Err(Error::plugin("stub", "stand-in plugins are for checking only"))
}

impl DatasetPlugin for Stub {
    fn build(&self, _: &Params, _: &StageContext) -> Result<Dataset> {
        never()
    }
}
impl ArchitecturePlugin for Stub {
    fn build(&self, _: &Params, _: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        never()
    }
}
impl TrainerPlugin for Stub {
    fn train(&self, _: &Params, _: TrainJob<'_>) -> Result<RunArtifact> {
        never()
    }
}
impl PrunerPlugin for Stub {
    fn score(&self, _: &Params, _: &PruneContext<'_>) -> Result<Scores> {
        never()
    }
}
impl AnalysisPlugin for Stub {
    fn analyze(&self, _: &Params, _: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        never()
    }
}
impl ReportPlugin for Stub {
    fn report(&self, _: &Params, _: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        never()
    }
}

use ParamType as T;

const PRUNABLE: ParamSpec =
    ParamSpec::new("prunable", T::StrList, "names of the parameters pruners may prune").default("[]");

const MODULAR: &[ParamSpec] = &[
    ParamSpec::new(
        "op",
        T::Choice(&[
            "add", "subtract", "multiply", "x2y2", "x2xyy2", "x2xyy2x", "x3xy", "x3xy2y", "x22xyy2", "x22xyy2y",
        ]),
        "the operation",
    )
    .default("\"add\""),
    ParamSpec::new("p", T::Int, "the modulus (and vocabulary size)").default("67").min(2.0),
    ParamSpec::new("pairs", T::Choice(&["symmetric", "all"]), "which pairs").default("\"symmetric\""),
    ParamSpec::new("train_fraction", T::Float, "fraction of pairs used for training")
        .default("0.4")
        .range_exclusive(0.0, 1.0),
    ParamSpec::new("split_seed", T::Int, "seed of the train/test shuffle; -1 = the stage's derived seed")
        .default("-1")
        .min(-1.0),
];
const MNIST: &[ParamSpec] = &[
    ParamSpec::new("path", T::Str, "directory with the IDX files").default("\"data/mnist-10k\""),
    ParamSpec::new("train_size", T::Int, "training examples").default("1000").min(1.0),
    ParamSpec::new("test_size", T::Int, "test examples; 0 = all the rest").default("0").min(0.0),
];
const POLYNOMIAL: &[ParamSpec] = &[
    ParamSpec::new("dim", T::Int, "input dimension d").default("40").min(1.0),
    ParamSpec::new("n_train", T::Int, "training examples").default("100").min(1.0),
    ParamSpec::new("n_test", T::Int, "test examples").default("100").min(1.0),
];
const PARITY: &[ParamSpec] = &[
    ParamSpec::new("n", T::Int, "input bits").default("40").min(1.0),
    ParamSpec::new("k", T::Int, "parity of the first k bits").default("3").min(1.0),
    ParamSpec::new("n_train", T::Int, "training examples").default("1000").min(1.0),
    ParamSpec::new("n_test", T::Int, "test examples").default("1000").min(1.0),
];
/// A stand-in with a required parameter (no built-in has one).
const TABULAR: &[ParamSpec] = &[ParamSpec::new("path", T::Str, "CSV file with one example per row")];
const MLP_MODULAR: &[ParamSpec] = &[
    ParamSpec::new("d_emb", T::Int, "embedding width").default("500").min(1.0),
    ParamSpec::new("width", T::Int, "hidden neurons of W_in").default("48").min(1.0),
    ParamSpec::new("kappa", T::Float, "initialisation scale").default("1.0").min(0.0),
    PRUNABLE,
];
const MLP: &[ParamSpec] = &[
    ParamSpec::new("hidden", T::IntList, "hidden layer widths").default("[200, 200]").min(1.0),
    ParamSpec::new("init_scale", T::Float, "initialisation scale").default("1.0").min(0.0),
    ParamSpec::new("bias", T::Bool, "add a bias to every layer").default("false"),
    PRUNABLE,
];
const TRANSFORMER: &[ParamSpec] = &[
    ParamSpec::new("d_model", T::Int, "residual width").default("128").min(1.0),
    ParamSpec::new("d_mlp", T::Int, "MLP hidden width").default("128").min(1.0),
    ParamSpec::new("heads", T::Int, "attention heads").default("1").min(1.0),
    ParamSpec::new("mlp_bias", T::Bool, "MLP biases").default("false"),
    PRUNABLE,
];
const MNIST_MLP: &[ParamSpec] = &[
    ParamSpec::new("width", T::Int, "hidden width").default("200").min(1.0),
    ParamSpec::new("alpha", T::Float, "initialisation scale").default("8.0").min(0.0),
    PRUNABLE,
];
const STANDARD: &[ParamSpec] = &[
    ParamSpec::new("steps", T::Int, "optimizer steps").default("30000").min(0.0),
    ParamSpec::new("optimizer", T::Choice(&["adamw", "sgd"]), "AdamW or SGD").default("\"adamw\""),
    ParamSpec::new("lr", T::Float, "learning rate").default("0.001").min(0.0),
    ParamSpec::new("weight_decay", T::Float, "weight decay").default("1.0").min(0.0),
    ParamSpec::new("beta1", T::Float, "AdamW beta1").default("0.9").range_exclusive(0.0, 1.0),
    ParamSpec::new("beta2", T::Float, "AdamW beta2").default("0.98").range_exclusive(0.0, 1.0),
    ParamSpec::new("eps", T::Float, "AdamW epsilon").default("1e-8").min(0.0),
    ParamSpec::new("momentum", T::Float, "SGD momentum").default("0.0").range_exclusive(0.0, 1.0),
    ParamSpec::new("batch_size", T::Int, "examples per step; 0 = full batch").default("0").min(0.0),
    ParamSpec::new("loss", T::Choice(&["cross_entropy", "mse"]), "training loss").default("\"cross_entropy\""),
    ParamSpec::new("eval_every", T::Int, "evaluate every N steps").default("100").min(0.0),
    ParamSpec::new("eval_log_points", T::Int, "additional log-spaced evaluation steps").default("0").min(0.0),
    ParamSpec::new("checkpoint_every", T::Int, "save weights every N steps").default("0").min(0.0),
    ParamSpec::new("checkpoint_steps", T::IntList, "additional checkpoint steps").default("[]").min(0.0),
    ParamSpec::new("threshold", T::Float, "accuracy threshold for t_mem and t_gen").default("0.95").range(0.0, 1.0),
    ParamSpec::new("resume_every", T::Int, "offer a resumable state every N steps").default("1000").min(0.0),
];
const BATCH: ParamSpec =
    ParamSpec::new("batch", T::Int, "training examples used for scoring; 0 = all").default("0").min(0.0);
const SNIP: &[ParamSpec] = &[BATCH];
const GRASP: &[ParamSpec] =
    &[BATCH, ParamSpec::new("temperature", T::Float, "logit temperature").default("200.0").min(1e-6)];
const SYNFLOW: &[ParamSpec] = &[
    ParamSpec::new("input", T::Choice(&["batch", "ones"]), "scoring input").default("\"batch\""),
    ParamSpec::new("rounds", T::Int, "scoring rounds").default("1").min(1.0),
    ParamSpec::new("precision", T::Choice(&["f32", "f32_rescaled"]), "score precision").default("\"f32\""),
];
const FOURIER: &[ParamSpec] = &[
    ParamSpec::new("embed", T::Str, "the embedding parameter").default("\"embed.W_E\""),
    ParamSpec::new("inproj", T::Str, "the input projection").default("\"inproj.W\""),
    ParamSpec::new("frequencies", T::Int, "frequencies kept; 0 = vocab/2 - 1").default("0").min(0.0),
];
const JACCARD: &[ParamSpec] =
    &[ParamSpec::new("rate", T::Float, "pruning rate of the masks compared").default("0.6").range_exclusive(0.0, 1.0)];
const GRAPH: &[ParamSpec] = &[ParamSpec::new("groups", T::Int, "nodes per side").default("48").min(2.0)];
const COMPARE: &[ParamSpec] =
    &[ParamSpec::new("baseline", T::Str, "the arm speed-ups are measured against").default("\"\"")];

fn instance(kind: PluginKind) -> PluginInstance {
    match kind {
        PluginKind::Dataset => PluginInstance::Dataset(Arc::new(Stub)),
        PluginKind::Architecture => PluginInstance::Architecture(Arc::new(Stub)),
        PluginKind::Trainer => PluginInstance::Trainer(Arc::new(Stub)),
        PluginKind::Pruner => PluginInstance::Pruner(Arc::new(Stub)),
        PluginKind::Analysis => PluginInstance::Analysis(Arc::new(Stub)),
        PluginKind::Report => PluginInstance::Report(Arc::new(Stub)),
    }
}

/// A registry with stand-ins for every built-in plugin (and `dataset/tabular`, which has a
/// required parameter).
pub fn registry() -> Registry {
    use PluginKind as K;
    let plugins: &[(K, &str, &[ParamSpec])] = &[
        (K::Dataset, "modular", MODULAR),
        (K::Dataset, "mnist", MNIST),
        (K::Dataset, "polynomial", POLYNOMIAL),
        (K::Dataset, "sparse_parity", PARITY),
        (K::Dataset, "tabular", TABULAR),
        (K::Architecture, "mlp_modular", MLP_MODULAR),
        (K::Architecture, "transformer_modular", TRANSFORMER),
        (K::Architecture, "mlp", MLP),
        (K::Architecture, "mnist_mlp", MNIST_MLP),
        (K::Trainer, "standard", STANDARD),
        (K::Pruner, "magnitude", &[]),
        (K::Pruner, "random", &[]),
        (K::Pruner, "shuffle", &[]),
        (K::Pruner, "snip", SNIP),
        (K::Pruner, "grasp", GRASP),
        (K::Pruner, "synflow", SYNFLOW),
        (K::Analysis, "fourier_entropy", FOURIER),
        (K::Analysis, "jaccard", JACCARD),
        (K::Analysis, "graph_metrics", GRAPH),
        (K::Analysis, "weight_norms", &[]),
        (K::Report, "compare", COMPARE),
    ];
    let mut r = Registry::default();
    for (kind, name, params) in plugins {
        r.insert(PluginEntry {
            kind: *kind,
            name: name.to_string(),
            version: "1.0.0".into(),
            summary: format!("stand-in for {kind}/{name}"),
            params: params.to_vec(),
            origin: Origin::BuiltIn,
            instance: instance(*kind),
        })
        .expect("names are unique");
    }
    r
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("dsl/ has a parent").to_path_buf()
}

/// Reads a file relative to the workspace root.
pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Loads a file relative to the workspace root (shown under that relative path).
pub fn load(
    rel: &str,
    overrides: &[&str],
) -> std::result::Result<ticketlab_core::ir::ExperimentIr, ticketlab_dsl::Diagnostics> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    ticketlab_dsl::load_source(rel, &read(rel), &registry(), &overrides)
}

/// Like [`load`], panicking with the rendered diagnostics.
pub fn load_ok(rel: &str, overrides: &[&str]) -> ticketlab_core::ir::ExperimentIr {
    load(rel, overrides).unwrap_or_else(|d| panic!("{}", d.render()))
}

/// Parses and checks text given inline, in `format`, shown as `name`.
pub fn load_text(
    name: &str,
    text: &str,
) -> std::result::Result<ticketlab_core::ir::ExperimentIr, ticketlab_dsl::Diagnostics> {
    ticketlab_dsl::load_source(name, text.as_bytes(), &registry(), &[])
}
