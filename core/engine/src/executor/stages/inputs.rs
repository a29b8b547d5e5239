//! A stage's inputs: the artifacts its ports connect to, checked for their type, and the
//! weights a prune or rewind stage works on.

use std::sync::Arc;

use super::compute::StageRun;
use ticketlab_api::artifact::{ArchSpec, Artifact, ModelArtifact};
use ticketlab_api::data::{Dataset, DatasetInfo};
use ticketlab_api::ir::StageIr;
use ticketlab_api::tensor::{Architecture, NamedTensors};
use ticketlab_api::{Error, Result};

impl StageRun<'_> {
    fn artifact(&self, name: &str) -> Result<&Artifact> {
        self.artifacts.get(name).map(Arc::as_ref).ok_or_else(|| Error::Wiring {
            stage: name.to_string(),
            message: "its result is not available".into(),
        })
    }

    /// The producers connected to `port`.
    pub(super) fn producers<'s>(&self, stage: &'s StageIr, port: &str) -> &'s [String] {
        stage.inputs.get(port).map(Vec::as_slice).unwrap_or_default()
    }

    /// The artifact on the single-stage port `port`, if it is connected.
    pub(super) fn optional(&self, stage: &StageIr, port: &str) -> Result<Option<&Artifact>> {
        match self.producers(stage, port) {
            [] => Ok(None),
            [one] => self.artifact(one).map(Some),
            many => {
                Err(wiring(stage, format!("port `{port}` takes one stage, not {}", many.len())))
            }
        }
    }

    /// The artifact on the single-stage port `port`, which must be connected.
    pub(super) fn one(&self, stage: &StageIr, port: &str) -> Result<&Artifact> {
        self.optional(stage, port)?
            .ok_or_else(|| wiring(stage, format!("needs an input on port `{port}`")))
    }

    /// The artifacts connected to a list port, with their stage names; `expected` names the
    /// type for the error when `pick` refuses one.
    pub(super) fn many<'a, T>(
        &'a self,
        stage: &'a StageIr,
        port: &str,
        expected: &str,
        pick: fn(&'a Artifact) -> Option<&'a T>,
    ) -> Result<Vec<(&'a str, &'a T)>> {
        self.producers(stage, port)
            .iter()
            .map(|p| {
                let a = self.artifact(p)?;
                pick(a).map(|t| (p.as_str(), t)).ok_or_else(|| wrong_type(stage, port, expected))
            })
            .collect()
    }

    pub(super) fn dataset(&self, stage: &StageIr, port: &str) -> Result<&Dataset> {
        match self.one(stage, port)? {
            Artifact::Dataset(d) => Ok(d),
            _ => Err(wrong_type(stage, port, "a dataset")),
        }
    }

    pub(super) fn model(&self, stage: &StageIr, port: &str) -> Result<&ModelArtifact> {
        match self.one(stage, port)? {
            Artifact::Model(m) => Ok(m),
            _ => Err(wrong_type(stage, port, "a model")),
        }
    }

    /// The dataset on the `data` port if connected, else the one found upstream.
    pub(super) fn data_or_upstream(&self, stage: &StageIr) -> Result<Option<&Dataset>> {
        match stage.inputs.contains_key("data") {
            true => self.dataset(stage, "data").map(Some),
            false => Ok(self.find_dataset(&stage.name)),
        }
    }

    /// The dataset the stage's inputs were built from, searching upstream depth first.
    fn find_dataset(&self, name: &str) -> Option<&Dataset> {
        let stage = &self.plan.stage(name)?.stage;
        for producers in stage.inputs.values() {
            for p in producers {
                match self.artifacts.get(p).map(Arc::as_ref) {
                    Some(Artifact::Dataset(d)) => return Some(d),
                    Some(_) => {
                        if let Some(d) = self.find_dataset(p) {
                            return Some(d);
                        }
                    }
                    None => {}
                }
            }
        }
        None
    }

    pub(super) fn architecture(
        &self,
        spec: &ArchSpec,
        info: &DatasetInfo,
    ) -> Result<Box<dyn Architecture>> {
        self.registry.architecture(&spec.plugin)?.build(&spec.params, info)
    }
}

/// An error about how `stage` is connected.
pub(super) fn wiring(stage: &StageIr, message: String) -> Error {
    Error::Wiring { stage: stage.name.clone(), message }
}

pub(super) fn wrong_type(stage: &StageIr, port: &str, expected: &str) -> Error {
    wiring(stage, format!("port `{port}` expects {expected}"))
}

/// The model (arch, mask, prunable names) and the weights a prune or rewind stage works on.
///
/// For a run, `which` (the `at` or `to` parameter) picks `final`, `init` or a checkpoint step;
/// for a model, only its own weights exist (`final` and `init` both mean them). The third value
/// is the step of the chosen weights (`None` = initialisation).
pub(super) fn select_weights<'a>(
    stage: &StageIr,
    from: &'a Artifact,
    which: &str,
    param: &str,
) -> Result<(&'a ModelArtifact, &'a NamedTensors, Option<u64>)> {
    match from {
        Artifact::Run(run) => run.weights_at(which, param).map(|(w, s)| (&run.init, w, s)),
        Artifact::Model(m) => match which {
            "final" | "init" => Ok((m.as_ref(), &m.params, None)),
            _ => Err(Error::param(
                param,
                format!(
                    "`{which}` selects a checkpoint, but `from` of stage `{}` is a model, which has none; connect a train stage or use `{param}: init`",
                    stage.name
                ),
            )),
        },
        _ => Err(wrong_type(stage, "from", "a model or a run")),
    }
}
