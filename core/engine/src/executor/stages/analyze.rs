//! Analyze and report stages: a plugin given the runs, masks, models and data it reads.

use super::compute::{Outcome, StageCompute, StageRun};
use crate::events::StageOutcome;
use crate::executor::messages::ChannelEvents;
use crate::plan::PlannedStage;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::{AnalysisInputs, Params};

/// An analyze or report stage.
pub(super) struct Analyze;

impl StageCompute for Analyze {
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, _: &ChannelEvents) -> Outcome {
        let stage = &ps.stage;
        let params = Params(stage.params.clone());
        let ctx = run.context(stage);
        let runs = run.many(stage, "runs", "runs", |a| {
            if let Artifact::Run(r) = a { Some(r.as_ref()) } else { None }
        })?;
        let masks = run.many(stage, "masks", "masks", |a| {
            if let Artifact::Mask(m) = a { Some(m.as_ref()) } else { None }
        })?;
        let models = run.many(stage, "models", "models", |a| {
            if let Artifact::Model(m) = a { Some(m.as_ref()) } else { None }
        })?;
        let data = run.data_or_upstream(stage)?;
        let spec = runs
            .first()
            .map(|(_, r)| &r.init.arch)
            .or_else(|| models.first().map(|(_, m)| &m.arch));
        let arch = match (spec, data) {
            (Some(spec), Some(d)) => Some(run.architecture(spec, &d.info)?),
            _ => None,
        };
        let inputs = AnalysisInputs { runs, masks, models, data, arch: arch.as_deref(), ctx: &ctx };
        let name = run.plugin(stage)?;
        let value = if stage.kind == StageKind::Analyze {
            run.registry.analysis(name)?.analyze(&params, &inputs)?
        } else {
            run.registry.report(name)?.report(&params, &inputs)?
        };
        Ok((Artifact::Analysis(Box::new(value)), StageOutcome::Ran))
    }
}
