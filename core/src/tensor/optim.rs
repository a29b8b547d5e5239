//! Optimizers with PyTorch semantics.

use serde::{Deserialize, Serialize};

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// AdamW with decoupled weight decay (torch.optim.AdamW).
    AdamW,
    /// SGD with momentum (torch.optim.SGD, dampening 0, no Nesterov).
    Sgd,
}

/// Optimizer hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay (decoupled for AdamW; L2 added to the gradient for SGD, as PyTorch does).
    pub weight_decay: f64,
    /// Adam beta1 / SGD momentum.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Adam epsilon.
    pub eps: f64,
}

impl OptimizerConfig {
    /// The paper's AdamW: lr 1e-3, wd 1.0, betas (0.9, 0.98), eps 1e-8.
    pub fn paper_adamw() -> Self {
        Self { kind: OptimizerKind::AdamW, lr: 1e-3, weight_decay: 1.0, beta1: 0.9, beta2: 0.98, eps: 1e-8 }
    }
}
