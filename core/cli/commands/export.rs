//! `ticketlab export RUN_DIR --arm ARM --out FILE`: an arm's weights and mask from the store, in
//! a `.safetensors` or `.npz` file that PyTorch and NumPy load (names as `state_dict` has them).
//! `ticketlab export RUN_DIR --tensorboard OUT`: the run's evaluations as TensorBoard event
//! files, one folder per arm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ticketlab_api::artifact::Artifact;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::registry::suggestion;
use ticketlab_api::tensor::{HostTensor, NamedTensors};
use ticketlab_engine::StageKey;
use ticketlab_engine::weights_file::{self, WeightsFormat};
use ticketlab_output::files;
use ticketlab_output::rundir::{ManifestStage, read_manifest};

use crate::failure::{Failure, print};

/// What of an arm to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// The weights training started from (theta0; for a ticket, the rewound, masked weights).
    Init,
    /// The weights after the last step.
    Final,
    /// The mask: 1.0 where a weight is kept, 0.0 where it is pruned (prunable parameters only).
    Mask,
}

impl What {
    fn name(self) -> &'static str {
        match self {
            What::Init => "init",
            What::Final => "final",
            What::Mask => "mask",
        }
    }
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run directory written by `ticketlab run`.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// The stage to export, as the run names it (a train stage such as `ticket_train` or
    /// `ticket_train[mask.rate=0.6]@seed1`, a model or rewind stage, or a prune stage's mask).
    /// With `--tensorboard`: only this arm, or every arm of this stage (default: every arm).
    #[arg(long, value_name = "ARM", required_unless_present = "tensorboard")]
    pub arm: Option<String>,
    /// What to write, comma-separated. One item: the tensors are named as the model's
    /// parameters (`layers.0.weight`), ready for `load_state_dict`. Several: each name is
    /// prefixed by the item (`init/layers.0.weight`, `final/...`, `mask/...`).
    #[arg(long, value_delimiter = ',', default_value = "init,final,mask")]
    pub what: Vec<What>,
    /// The file to write: `.safetensors` (with the arm, architecture and step in its metadata) or
    /// `.npz`.
    #[arg(long, value_name = "FILE", required_unless_present = "tensorboard")]
    pub out: Option<PathBuf>,
    /// Write the run's evaluations as TensorBoard event files into OUT instead, one folder per
    /// arm (`tensorboard --logdir OUT`): accuracies, losses and norms per evaluation, and each
    /// arm's t_mem, t_gen and speed-up as text. A run still going exports what it has so far.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["out", "what", "store"])]
    pub tensorboard: Option<PathBuf>,
    /// The store the run used (default: .ticketlab under the working directory).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// Writes the file; a missing arm, stored result or mask is an input error naming the fix.
pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(out) = &args.tensorboard {
        return tensorboard(&args.run_dir, out, args.arm.as_deref());
    }
    let (Some(arm), Some(out)) = (&args.arm, &args.out) else {
        return Err(Failure::input("give --arm ARM and --out FILE, or --tensorboard OUT"));
    };
    let format = WeightsFormat::of(out).map_err(Failure::input)?;
    let manifest = read_manifest(&args.run_dir).map_err(Failure::input)?;
    let stage = find_stage(&manifest.stages, arm)?;
    let store = super::store(args.store.as_ref())?;
    let key = stage.key.as_deref().and_then(StageKey::parse).ok_or_else(|| {
        Failure::input(format!(
            "stage `{}` did not finish in this run: it has nothing to export",
            stage.name
        ))
    })?;
    if !store.contains(&key) {
        return Err(Failure::input(format!(
            "the store {} does not hold `{}` (key {}): give the store the run used with --store, or run again: {}",
            store.root().display(),
            stage.name,
            key.short(),
            manifest.command
        )));
    }
    let artifact = store.load(&key).map_err(Failure::failed)?;
    let parts = exported(&artifact, &args.what, &stage.name)?;
    let several = parts.len() > 1;
    let mut tensors: Vec<(String, &HostTensor)> = Vec::new();
    for (what, set) in &parts {
        let prefix = if several { format!("{}/", what.name()) } else { String::new() };
        tensors.extend(set.iter().map(|(name, t)| (format!("{prefix}{name}"), t)));
    }
    let metadata = metadata(&artifact, &stage.name, &manifest.experiment, &args.what);
    let bytes = weights_file::to_file_bytes(format, &tensors, metadata).map_err(Failure::failed)?;
    files::write(out, bytes).map_err(Failure::failed)?;
    print(&format!(
        "{}: {} tensors of `{}` ({})\n",
        out.display(),
        tensors.len(),
        stage.name,
        args.what.iter().map(|w| w.name()).collect::<Vec<_>>().join(", ")
    ))
}

/// Writes the TensorBoard event files of `run_dir` under `out`.
fn tensorboard(run_dir: &Path, out: &Path, only: Option<&str>) -> Result<(), Failure> {
    let exported =
        ticketlab_output::tensorboard::export(run_dir, out, only).map_err(Failure::of_run_files)?;
    let partial = if exported.partial { " so far (the run has not finished)" } else { "" };
    print(&format!(
        "{}: the evaluations of {} arms{partial}; view them with `tensorboard --logdir {}`\n",
        out.display(),
        exported.files.len(),
        out.display()
    ))
}

/// The stage called `arm`, or an error listing what could be exported.
fn find_stage<'a>(stages: &'a [ManifestStage], arm: &str) -> Result<&'a ManifestStage, Failure> {
    if let Some(stage) = stages.iter().find(|s| s.name == arm) {
        return Ok(stage);
    }
    let exportable: Vec<&str> = stages
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                StageKind::Train | StageKind::Model | StageKind::Rewind | StageKind::Prune
            )
        })
        .map(|s| s.name.as_str())
        .collect();
    Err(Failure::input(format!(
        "the run has no stage `{arm}`: {}",
        suggestion(arm, &exportable, "stages it can export")
    )))
}

/// The tensor sets `what` asks for, from a stage's stored result.
fn exported<'a>(
    artifact: &'a Artifact,
    what: &[What],
    stage: &str,
) -> Result<Vec<(What, &'a NamedTensors)>, Failure> {
    let (init, last, mask) = match artifact {
        Artifact::Run(run) => {
            (Some(&run.init.params), Some(&run.final_params), run.init.mask.as_ref())
        }
        Artifact::Model(model) => (Some(&model.params), None, model.mask.as_ref()),
        Artifact::Mask(mask) => (None, None, Some(&mask.masks)),
        _ => {
            return Err(Failure::input(format!(
                "`{stage}` holds no weights or mask: export a train, model, rewind or prune stage"
            )));
        }
    };
    what.iter()
        .map(|&w| {
            let set = match w {
                What::Init => init,
                What::Final => last,
                What::Mask => mask,
            };
            set.map(|s| (w, s)).ok_or_else(|| {
                let why = match (w, artifact) {
                    (What::Mask, _) => "is dense: it has no mask",
                    (What::Final, Artifact::Model(_)) => {
                        "is a model, not a training: it has no final weights"
                    }
                    _ => "is a mask: it has no weights",
                };
                Failure::input(format!("`{stage}` {why}; leave `{}` out of --what", w.name()))
            })
        })
        .collect()
}

/// Metadata for a safetensors header: where the tensors come from and how to rebuild the model.
fn metadata(
    artifact: &Artifact,
    stage: &str,
    experiment: &str,
    what: &[What],
) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::from([
        ("ticketlab.experiment".to_string(), experiment.to_string()),
        ("ticketlab.arm".to_string(), stage.to_string()),
        ("ticketlab.what".to_string(), what.iter().map(|w| w.name()).collect::<Vec<_>>().join(",")),
    ]);
    let model = match artifact {
        Artifact::Run(run) => {
            if let Some(step) = run.records.last().map(|r| r.step) {
                meta.insert("ticketlab.final_step".into(), step.to_string());
            }
            Some(&run.init)
        }
        Artifact::Model(model) => Some(model.as_ref()),
        _ => None,
    };
    if let Some(model) = model {
        meta.insert("ticketlab.architecture".into(), model.arch.plugin.clone());
        let params = serde_json::to_string(&model.arch.params).unwrap_or_default();
        meta.insert("ticketlab.architecture_params".into(), params);
        meta.insert("ticketlab.origin".into(), model.origin.clone());
    }
    meta
}
