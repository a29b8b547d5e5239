//! Artifacts: what stages produce and consume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::metrics::{EvalRecord, RunSummary};
use crate::plugin::SavedWeights;
use crate::plugin::params::Params;
use crate::tensor::{MaskSet, NamedTensors};
use crate::{Error, Result};

/// Which architecture plugin built a model, with which parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchSpec {
    /// Architecture plugin name.
    pub plugin: String,
    /// Its parameters, defaults filled.
    pub params: Params,
}

/// A model state: architecture, weights and (for tickets) a mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The architecture.
    pub arch: ArchSpec,
    /// Weights. For masked models, pruned entries are exactly 0.0.
    pub params: NamedTensors,
    /// Mask over prunable parameters, if the model is sparse.
    pub mask: Option<MaskSet>,
    /// Names of the prunable parameters.
    pub prunable: Vec<String>,
    /// Where this state came from (e.g. `init`, `rewind of dense to step 0 with mask m`).
    pub origin: String,
}

/// Kept/total counts of one mask entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerDensity {
    /// Weights in the layer.
    pub total: usize,
    /// Weights kept.
    pub kept: usize,
    /// `kept / total`.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub density: f64,
}

/// Per-layer and global density of a mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityReport {
    /// Per prunable parameter.
    pub layers: BTreeMap<String, LayerDensity>,
    /// All prunable weights.
    pub total: usize,
    /// All kept weights.
    pub kept: usize,
    /// `kept / total`.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub density: f64,
}

impl DensityReport {
    /// Counts the ones of every mask entry.
    pub fn of(masks: &MaskSet) -> Self {
        let mut layers = BTreeMap::new();
        let (mut total, mut kept) = (0, 0);
        for (name, m) in masks {
            let k = m.data.iter().filter(|v| **v != 0.0).count();
            let t = m.data.len();
            total += t;
            kept += k;
            layers.insert(
                name.clone(),
                LayerDensity {
                    total: t,
                    kept: k,
                    density: if t == 0 { 0.0 } else { k as f64 / t as f64 },
                },
            );
        }
        let density = if total == 0 { 1.0 } else { kept as f64 / total as f64 };
        Self { layers, total, kept, density }
    }

    /// Names of layers whose density is 0 (layer collapse).
    pub fn collapsed(&self) -> Vec<&str> {
        self.layers
            .iter()
            .filter(|(_, l)| l.kept == 0 && l.total > 0)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// A pruning result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskArtifact {
    /// The mask, one entry per prunable parameter.
    pub masks: MaskSet,
    /// Its density report.
    pub report: DensityReport,
    /// The pruner that made it (`name@version`).
    pub pruner: String,
    /// Pruning rate: the fraction of prunable weights *removed*.
    #[serde(deserialize_with = "crate::json_float::null_as_nan")]
    pub rate: f64,
    /// The step of the weights that were scored (`None` = initialisation).
    pub scored_at: Option<u64>,
    /// Warnings raised while pruning (e.g. layer collapse).
    pub warnings: Vec<String>,
}

/// A finished training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunArtifact {
    /// The model it started from (weights at step 0, mask).
    pub init: ModelArtifact,
    /// Weights after the last step.
    pub final_params: NamedTensors,
    /// Saved weights by step.
    pub checkpoints: BTreeMap<u64, NamedTensors>,
    /// Every evaluation, sorted by step.
    pub records: Vec<EvalRecord>,
    /// Headline numbers.
    pub summary: RunSummary,
}

impl RunArtifact {
    /// The weights a stage's `param` (`at`, `to`) selects: `final`, `init` (also `0`) or a
    /// checkpoint step, with the step they are at (`None` for the initial weights). A step the
    /// run saved no checkpoint at is an error naming the saved steps and the fix.
    pub fn weights_at(&self, which: &str, param: &str) -> Result<(&NamedTensors, Option<u64>)> {
        let saved = SavedWeights::parse(which).ok_or_else(|| {
            Error::param(param, format!("`{which}` is not `final`, `init` or a step number"))
        })?;
        match saved {
            SavedWeights::Final => Ok((&self.final_params, Some(self.summary.steps))),
            SavedWeights::Init | SavedWeights::Step(0) => Ok((&self.init.params, None)),
            SavedWeights::Step(n) => {
                self.checkpoints.get(&n).map(|w| (w, Some(n))).ok_or_else(|| {
                    let have: Vec<String> = self.checkpoints.keys().map(u64::to_string).collect();
                    Error::param(
                        param,
                        format!(
                            "the run has no checkpoint at step {n}; saved steps: {}. Add {n} to the trainer's `checkpoint_steps`",
                            have.join(", ")
                        ),
                    )
                })
            }
        }
    }
}

/// The result of an analysis stage: named tables and series, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisArtifact {
    /// Analysis plugin name.
    pub analysis: String,
    /// Its output (plugin-defined shape, documented by the plugin).
    pub value: serde_json::Value,
}

/// Anything a stage produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Artifact {
    /// From a dataset stage.
    Dataset(Box<Dataset>),
    /// From a model (init) or rewind stage.
    Model(Box<ModelArtifact>),
    /// From a prune stage.
    Mask(Box<MaskArtifact>),
    /// From a train stage.
    Run(Box<RunArtifact>),
    /// From an analyze or report stage.
    Analysis(Box<AnalysisArtifact>),
}
