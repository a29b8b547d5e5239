//! Dataset and model stages: a task's data, and a network at initialisation.

use super::compute::{Outcome, StageCompute, StageRun};
use crate::events::StageOutcome;
use crate::executor::messages::ChannelEvents;
use crate::plan::PlannedStage;
use ticketlab_api::artifact::{ArchSpec, Artifact, ModelArtifact};
use ticketlab_api::ir::{MODEL_PARAMS, WEIGHTS};
use ticketlab_api::plugin::Params;
use ticketlab_api::tensor::{Architecture, NamedTensors, init_params};
use ticketlab_api::{Error, Result};

use crate::weights_file;
use std::path::Path;

/// A dataset stage: [`DatasetPlugin::build`](ticketlab_api::plugin::DatasetPlugin::build).
pub(super) struct Dataset;

impl StageCompute for Dataset {
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, _: &ChannelEvents) -> Outcome {
        let stage = &ps.stage;
        let params = Params(stage.params.clone());
        let data = run.registry.dataset(run.plugin(stage)?)?.build(&params, &run.context(stage))?;
        Ok((Artifact::Dataset(Box::new(data)), StageOutcome::Ran))
    }
}

/// A model stage: the architecture for its data's shapes, its weights drawn with the stage's
/// seed once the budget allows them.
pub(super) struct Model;

impl StageCompute for Model {
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, _: &ChannelEvents) -> Outcome {
        let stage = &ps.stage;
        let params = Params(stage.params.clone());
        let data = run.dataset(stage, "data")?;
        let name = run.plugin(stage)?;
        let arch = run.registry.architecture(name)?.build(&params, &data.info)?;
        run.options.runtime.budget.check_weights(arch.as_ref(), &params)?;
        let (weights, origin) = match stage.core_input_files(&run.options.runtime.base_dir).pop() {
            Some(file) => {
                let prefix = params.str("weights_prefix")?;
                (
                    read_weights(&file, prefix, arch.as_ref())?,
                    format!("weights from {}", file.display()),
                )
            }
            None => (init_params(arch.as_ref(), stage.seed), "init".to_string()),
        };
        // The architecture's own parameters: what rebuilds it (a re-initialising rewind draws
        // fresh weights, never reads the file again).
        let mut arch_params = params;
        arch_params.0.retain(|k, _| !MODEL_PARAMS.iter().any(|p| p.name == k.as_str()));
        let model = ModelArtifact {
            arch: ArchSpec { plugin: name.to_string(), params: arch_params },
            params: weights,
            mask: None,
            prunable: arch.prunable(),
            origin,
        };
        Ok((Artifact::Model(Box::new(model)), StageOutcome::Ran))
    }
}

/// The weights of `arch` from the file at `path`: the tensor `prefix` + name of each parameter,
/// with its shape. Without a prefix every tensor of the file must be a parameter (as PyTorch's
/// strict `load_state_dict`), so that a misnamed file is refused rather than half used.
fn read_weights(path: &Path, prefix: &str, arch: &dyn Architecture) -> Result<NamedTensors> {
    let at_key = |message: String| Error::param(WEIGHTS, format!("{}: {message}", path.display()));
    let mut file = weights_file::read(path).map_err(|e| Error::param(WEIGHTS, e.to_string()))?;
    let mut weights = NamedTensors::new();
    let mut missing = Vec::new();
    for def in arch.parameters() {
        match file.remove(&format!("{prefix}{}", def.name)) {
            Some(t) if t.shape == def.shape => {
                weights.insert(def.name, t);
            }
            Some(t) => {
                return Err(at_key(format!(
                    "`{prefix}{}` has shape {:?}, but the architecture's parameter has {:?}; change the model's parameters or the file",
                    def.name, t.shape, def.shape
                )));
            }
            None => missing.push(format!("{prefix}{}", def.name)),
        }
    }
    let extra: Vec<String> = file.into_keys().filter(|n| n.starts_with(prefix)).collect();
    if !missing.is_empty() {
        // A file with prefixed names (`final/layers.0.weight`) names the prefix to give.
        let hint = extra
            .iter()
            .find_map(|n| n.strip_suffix(missing[0].as_str()).filter(|p| !p.is_empty()))
            .map(|p| format!("; set `weights_prefix: \"{prefix}{p}\"` to read those under it"))
            .unwrap_or_default();
        return Err(at_key(format!(
            "has no tensor {}; it holds {}{}{hint}",
            missing.join(", "),
            if extra.is_empty() { "no other tensor".to_string() } else { extra.join(", ") },
            if prefix.is_empty() { "" } else { " (under `weights_prefix`)" },
        )));
    }
    if prefix.is_empty() && !extra.is_empty() {
        return Err(at_key(format!(
            "holds tensors the architecture does not have: {}; rename them, or set `weights_prefix` to read only those under a prefix",
            extra.join(", ")
        )));
    }
    Ok(weights)
}
