//! Rewind stages: a mask applied to saved weights, in one of the rewinding modes.

use super::compute::{Outcome, StageCompute, StageRun};
use super::inputs::{select_weights, wiring, wrong_type};
use crate::events::StageOutcome;
use crate::executor::messages::ChannelEvents;
use crate::plan::PlannedStage;
use ticketlab_api::Result;
use ticketlab_api::artifact::{Artifact, ModelArtifact};
use ticketlab_api::ir::StageIr;
use ticketlab_api::plugin::Params;
use ticketlab_tensor::rewind;

/// A rewind stage.
pub(super) struct Rewind;

impl StageCompute for Rewind {
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, _: &ChannelEvents) -> Outcome {
        let model = rewound(run, &ps.stage)?;
        Ok((Artifact::Model(Box::new(model)), StageOutcome::Ran))
    }
}

fn rewound(run: &StageRun<'_>, stage: &StageIr) -> Result<ModelArtifact> {
    let params = Params(stage.params.clone());
    let from = run.one(stage, "from")?;
    let to = params.str("to")?;
    let mode = params.str("mode")?;
    let (model, weights, _) = select_weights(stage, from, to, "to")?;
    let (mask, mask_origin) = match run.optional(stage, "mask")? {
        Some(Artifact::Mask(m)) => {
            (Some(&m.masks), format!(" with mask `{}`", run.producers(stage, "mask")[0]))
        }
        Some(_) => return Err(wrong_type(stage, "mask", "a mask")),
        None => (model.mask.as_ref(), String::new()),
    };
    let data = run.data_or_upstream(stage)?.ok_or_else(|| {
        wiring(
            stage,
            "cannot find the dataset its model was built for; connect it to `data`".into(),
        )
    })?;
    let arch = run.architecture(&model.arch, &data.info)?;
    let (weights, mask) =
        rewind::rewind(rewind::RewindMode::parse(mode)?, weights, mask, arch.as_ref(), stage.seed)?;
    Ok(ModelArtifact {
        arch: model.arch.clone(),
        params: weights,
        mask,
        prunable: model.prunable.clone(),
        origin: format!("{mode} of `{}` to {to}{mask_origin}", run.producers(stage, "from")[0]),
    })
}
