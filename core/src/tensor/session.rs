//! Compiled training sessions and one-off evaluations on host data.

use crate::Result;
use crate::data::Split;
use crate::tensor::{Architecture, HostTensor, MaskSet, NamedTensors, OptimizerConfig};

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy against class labels.
    CrossEntropy,
    /// Mean squared error against one-hot labels (classification) or targets (regression).
    Mse,
}

/// A scalar objective to differentiate (for pruning scores).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Mean cross-entropy of `logits / temperature` (temperature 1 = plain CE).
    CrossEntropy {
        /// Logit temperature (GraSP uses 200).
        temperature: f32,
    },
    /// Mean squared error.
    Mse,
    /// Sum of all outputs (SynFlow's R).
    SumOutputs,
}

/// Loss and accuracy over a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy (classification only).
    pub accuracy: Option<f64>,
}

/// Outputs of the network on `x` with `params` (masked by `mask` when given).
pub fn forward(arch: &dyn Architecture, params: &NamedTensors, mask: Option<&MaskSet>, x: &HostTensor) -> Result<HostTensor> {
    let _ = (arch, params, mask, x);
    todo!("engine")
}

/// Gradients of `objective` on `split` with respect to every parameter (of the masked
/// weights w = m * theta, i.e. dL/dw; multiply by theta for dL/dm).
pub fn gradients(arch: &dyn Architecture, params: &NamedTensors, mask: Option<&MaskSet>, split: &Split, objective: Objective) -> Result<NamedTensors> {
    let _ = (arch, params, mask, split, objective);
    todo!("engine")
}

/// The Hessian of `objective` times `v`, by double backward: the gradient of `<stop(v), dL/dw>`.
pub fn hessian_gradient_product(arch: &dyn Architecture, params: &NamedTensors, mask: Option<&MaskSet>, split: &Split, objective: Objective, v: &NamedTensors) -> Result<NamedTensors> {
    let _ = (arch, params, mask, split, objective, v);
    todo!("engine")
}

/// Loss and accuracy of the network on a split.
pub fn evaluate(arch: &dyn Architecture, params: &NamedTensors, mask: Option<&MaskSet>, split: &Split, loss: LossKind) -> Result<EvalResult> {
    let _ = (arch, params, mask, split, loss);
    todo!("engine")
}

/// One training step compiled once and executed many times.
pub struct TrainingSession {
    _private: (),
}

impl TrainingSession {
    /// Compiles a session: `batch_size` examples per step (the whole train split for full batch).
    pub fn new(arch: &dyn Architecture, params: NamedTensors, mask: Option<MaskSet>, loss: LossKind, optimizer: OptimizerConfig, batch_size: usize, example: &Split) -> Result<Self> {
        let _ = (arch, params, mask, loss, optimizer, batch_size, example);
        todo!("engine")
    }

    /// One optimizer step on `batch`; returns the batch loss before the update.
    pub fn step(&mut self, batch: &Split) -> Result<f64> {
        let _ = batch;
        todo!("engine")
    }

    /// Loss and accuracy on a split with the current weights.
    pub fn evaluate(&mut self, split: &Split) -> Result<EvalResult> {
        let _ = split;
        todo!("engine")
    }

    /// Current weights (masked entries exactly 0).
    pub fn params(&self) -> NamedTensors {
        todo!("engine")
    }

    /// Optimizer state, for checkpoints.
    pub fn optimizer_state(&self) -> NamedTensors {
        todo!("engine")
    }

    /// Restores weights, optimizer state and step count (resume).
    pub fn restore(&mut self, params: &NamedTensors, optimizer: &NamedTensors, step: u64) -> Result<()> {
        let _ = (params, optimizer, step);
        todo!("engine")
    }
}
