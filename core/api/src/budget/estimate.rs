//! Estimates of each stage's memory from its parameters alone, before anything runs.

use std::collections::BTreeMap;

use super::{Budget, culprit, elements, f32_bytes, weight_count};
use crate::data::DatasetShape;
use crate::ir::{ExperimentIr, StageKind};
use crate::plugin::ModelSize;
use crate::plugin::params::Params;
use crate::plugin::registry::Registry;
use crate::tensor::Architecture;
use crate::{Error, Result};

impl Budget {
    /// The memory of each stage of `ir` that can be estimated from parameters alone, in bytes, or
    /// the [`Error::Param`] of a stage beyond the limit. Stages whose size cannot be known before
    /// they run (a dataset without [`crate::plugin::DatasetPlugin::shape`], analyses) are left out.
    /// Nothing is allocated: architectures are built (which only records shapes), never their
    /// weights.
    pub fn estimate(
        &self,
        ir: &ExperimentIr,
        registry: &Registry,
    ) -> BTreeMap<String, Result<u64>> {
        let mut shapes: BTreeMap<&str, DatasetShape> = BTreeMap::new();
        // The model each stage works on: its size, the model stage and that stage's likeliest
        // culprit parameter (where a model too large to train is reported).
        let mut models: BTreeMap<&str, Model> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for stage in &ir.stages {
            let params = Params(stage.params.clone());
            let plugin = stage.plugin.as_deref().unwrap_or_default();
            let input =
                |port: &str| stage.inputs.get(port).and_then(|p| p.first()).map(String::as_str);
            let model_of = |port: &str, models: &BTreeMap<&str, Model>| {
                input(port)
                    .and_then(|m| models.get(m).cloned().or_else(|| upstream_model(ir, m, models)))
            };
            let estimate = match stage.kind {
                StageKind::Dataset => {
                    registry.dataset(plugin).ok().and_then(|d| d.shape(&params)).map(|shape| {
                        let row = elements(&shape.info.input_shape)
                            .saturating_add(shape.info.output_dim as u64);
                        let bytes =
                            f32_bytes(row.saturating_mul((shape.train + shape.test) as u64));
                        shapes.insert(&stage.name, shape);
                        Ok(bytes)
                    })
                }
                StageKind::Model => input("data").and_then(|d| shapes.get(d)).and_then(|shape| {
                    let arch =
                        registry.architecture(plugin).ok()?.build(&params, &shape.info).ok()?;
                    let size = model_size(arch.as_ref(), shape.train);
                    let model = Model {
                        size,
                        stage: stage.name.clone(),
                        culprit: culprit(&params).to_string(),
                    };
                    models.insert(&stage.name, model);
                    Some(
                        self.check_weights(arch.as_ref(), &params)
                            .map(|()| f32_bytes(size.weights)),
                    )
                }),
                StageKind::Train => model_of("model", &models).and_then(|model| {
                    models.insert(&stage.name, model.clone());
                    match registry.trainer(plugin).ok()?.memory(&params, &model.size, self) {
                        // Too large to train at all: the model's sizes are to change, not the
                        // trainer's, so the model stage is refused.
                        Err(Error::Param { key, message }) if key == "model" => {
                            let refused = Err(Error::param(model.culprit.clone(), message));
                            let slot = out.entry(model.stage.clone()).or_insert(Ok(0));
                            if slot.is_ok() {
                                *slot = refused;
                            }
                            None
                        }
                        other => other.transpose(),
                    }
                }),
                StageKind::Prune | StageKind::Rewind => model_of("from", &models).map(|model| {
                    // The weights read and the mask or weights written.
                    let bytes = f32_bytes(model.size.weights).saturating_mul(2);
                    models.insert(&stage.name, model);
                    Ok(bytes)
                }),
                StageKind::Analyze | StageKind::Report => None,
            };
            if let Some(e) = estimate {
                out.insert(stage.name.clone(), e);
            }
        }
        out
    }
}

/// The model a stage works on, for [`Budget::estimate`].
#[derive(Debug, Clone)]
struct Model {
    size: ModelSize,
    stage: String,
    culprit: String,
}

/// The model size of a stage fed by `name`, found through the stages upstream of it.
fn upstream_model(ir: &ExperimentIr, name: &str, models: &BTreeMap<&str, Model>) -> Option<Model> {
    ir.stage(name)?.inputs.values().flatten().find_map(|p| models.get(p.as_str()).cloned())
}

fn model_size(arch: &dyn Architecture, examples: usize) -> ModelSize {
    let defs = arch.parameters();
    ModelSize {
        weights: weight_count(&defs),
        tensors: defs.len() as u64,
        examples: examples as u64,
    }
}
