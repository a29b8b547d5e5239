//! Dataset and model stages: a task's data, and a network at initialisation.

use super::compute::{Outcome, StageCompute, StageRun};
use crate::events::StageOutcome;
use crate::executor::messages::ChannelEvents;
use crate::plan::PlannedStage;
use ticketlab_api::artifact::{ArchSpec, Artifact, ModelArtifact};
use ticketlab_api::plugin::Params;
use ticketlab_api::tensor::init_params;

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
        let weights = init_params(arch.as_ref(), stage.seed);
        let model = ModelArtifact {
            arch: ArchSpec { plugin: name.to_string(), params },
            params: weights,
            mask: None,
            prunable: arch.prunable(),
            origin: "init".into(),
        };
        Ok((Artifact::Model(Box::new(model)), StageOutcome::Ran))
    }
}
