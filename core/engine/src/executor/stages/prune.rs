//! Prune stages: a pruner's scores on the chosen weights, turned into a mask by the tensor
//! crate's pruning core.

use super::compute::{Outcome, StageCompute, StageRun};
use super::inputs::{select_weights, wiring, wrong_type};
use crate::events::StageOutcome;
use crate::executor::messages::ChannelEvents;
use crate::plan::PlannedStage;
use ticketlab_api::Result;
use ticketlab_api::artifact::{Artifact, MaskArtifact};
use ticketlab_api::ir::StageIr;
use ticketlab_api::plugin::{Params, PluginKind, PruneContext};
use ticketlab_tensor::pruning;

/// A prune stage.
pub(super) struct Prune;

impl StageCompute for Prune {
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, _: &ChannelEvents) -> Outcome {
        let mask = prune(run, &ps.stage)?;
        Ok((Artifact::Mask(Box::new(mask)), StageOutcome::Ran))
    }
}

fn prune(run: &StageRun<'_>, stage: &StageIr) -> Result<MaskArtifact> {
    let params = Params(stage.params.clone());
    let ctx = run.context(stage);
    let from = run.one(stage, "from")?;
    let name = run.plugin(stage)?;
    let pruner = run.registry.pruner(name)?;
    // The dataset connected to `data`, which only a pruner that scores with data needs.
    let data = match stage.inputs.contains_key("data") {
        true => Some(run.dataset(stage, "data")?),
        false if pruner.needs_data(&params) => {
            return Err(wiring(
                stage,
                format!("pruner `{name}` scores with data: connect a dataset to `data`"),
            ));
        }
        false => None,
    };
    let (model, weights, scored_at) = select_weights(stage, from, params.str("at")?, "at")?;
    // The network is rebuilt for the dataset it was built for, connected or found upstream.
    let built_for = run.data_or_upstream(stage)?.ok_or_else(|| {
        wiring(
            stage,
            "cannot find the dataset its model was built for; connect it to `data`".into(),
        )
    })?;
    let arch = run.architecture(&model.arch, &built_for.info)?;
    let reference = match run.optional(stage, "mask")? {
        Some(Artifact::Mask(m)) => Some(&m.masks),
        Some(_) => return Err(wrong_type(stage, "mask", "a mask")),
        None => None,
    };
    let dense;
    let current = match &model.mask {
        Some(m) => m,
        None => {
            dense = pruning::dense_mask(arch.as_ref());
            &dense
        }
    };
    let pruner_id = run.registry.require(PluginKind::Pruner, name)?.fingerprint();
    let input = PruneContext {
        arch: arch.as_ref(),
        params: weights,
        mask: current,
        reference_mask: reference,
        data,
        ctx: &ctx,
        round: (0, 1),
    };
    let request = pruning::MaskRequest { pruner_id: &pruner_id, params: &params, input, scored_at };
    pruning::make_mask(pruner.as_ref(), &request)
}
