//! Optimizers with PyTorch semantics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tensor::{HostTensor, NamedTensors, ParamDef};
use crate::{Error, Result};

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

/// Optimizer state: moments per parameter and the step count.
pub(crate) struct OptimizerState {
    config: OptimizerConfig,
    step: u64,
    /// First moment (AdamW) or momentum buffer (SGD), by parameter name.
    first: BTreeMap<String, Vec<f32>>,
    /// Second moment (AdamW only).
    second: BTreeMap<String, Vec<f32>>,
    shapes: BTreeMap<String, Vec<usize>>,
}

impl OptimizerState {
    /// Zeroed state for `params`.
    pub(crate) fn new(config: OptimizerConfig, params: &[ParamDef]) -> Self {
        let zeros = |p: &ParamDef| (p.name.clone(), vec![0.0f32; p.shape.iter().product()]);
        Self {
            config,
            step: 0,
            first: params.iter().map(zeros).collect(),
            second: if config.kind == OptimizerKind::AdamW { params.iter().map(zeros).collect() } else { BTreeMap::new() },
            shapes: params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect(),
        }
    }

    /// Steps completed.
    pub(crate) fn steps(&self) -> u64 {
        self.step
    }

    /// Updates one parameter in place for the step being taken; masked entries end at 0.
    ///
    /// The arithmetic follows PyTorch's single-tensor implementations operation by operation:
    /// AdamW: `p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
    /// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
    /// SGD: `g += wd*p; buf = g (first step) or momentum*buf + g; p -= lr*buf`.
    pub(crate) fn update(&mut self, name: &str, p: &mut [f32], g: &[f32], mask: Option<&[f32]>) {
        let c = self.config;
        let t = self.step + 1;
        let m = self.first.get_mut(name).expect("state exists for every parameter");
        match c.kind {
            OptimizerKind::AdamW => {
                let v = self.second.get_mut(name).expect("state exists for every parameter");
                let decay = (1.0 - c.lr * c.weight_decay) as f32;
                let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
                let bias1 = 1.0 - c.beta1.powi(t as i32);
                let bias2_sqrt = ((1.0 - c.beta2.powi(t as i32)).sqrt()) as f32;
                let step_size = (c.lr / bias1) as f32;
                let eps = c.eps as f32;
                let w1 = 1.0 - b1;
                for i in 0..p.len() {
                    p[i] *= decay;
                    m[i] += w1 * (g[i] - m[i]);
                    v[i] = v[i] * b2 + (1.0 - b2) * g[i] * g[i];
                    let denom = v[i].sqrt() / bias2_sqrt + eps;
                    p[i] += -step_size * (m[i] / denom);
                }
            }
            OptimizerKind::Sgd => {
                let (lr, wd, mu) = (c.lr as f32, c.weight_decay as f32, c.beta1 as f32);
                for i in 0..p.len() {
                    let gi = g[i] + wd * p[i];
                    let d = if mu == 0.0 {
                        gi
                    } else {
                        m[i] = if t == 1 { gi } else { mu * m[i] + gi };
                        m[i]
                    };
                    p[i] -= lr * d;
                }
            }
        }
        if let Some(mask) = mask {
            // Assign rather than multiply: a masked weight is +0.0, never -0.0.
            p.iter_mut().zip(mask).filter(|(_, k)| **k == 0.0).for_each(|(w, _)| *w = 0.0);
        }
    }

    /// Marks the step as taken.
    pub(crate) fn finish_step(&mut self) {
        self.step += 1;
    }

    /// The state as named tensors (`exp_avg/NAME`, `exp_avg_sq/NAME` or `momentum/NAME`).
    pub(crate) fn export(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        let first = if self.config.kind == OptimizerKind::AdamW { "exp_avg" } else { "momentum" };
        for (name, m) in &self.first {
            out.insert(format!("{first}/{name}"), HostTensor::new(self.shapes[name].clone(), m.clone()));
        }
        for (name, v) in &self.second {
            out.insert(format!("exp_avg_sq/{name}"), HostTensor::new(self.shapes[name].clone(), v.clone()));
        }
        out
    }

    /// Restores [`OptimizerState::export`]ed state after `step` steps.
    pub(crate) fn import(&mut self, state: &NamedTensors, step: u64) -> Result<()> {
        let first = if self.config.kind == OptimizerKind::AdamW { "exp_avg" } else { "momentum" };
        for (prefix, map) in [(first, &mut self.first), ("exp_avg_sq", &mut self.second)] {
            for (name, buf) in map.iter_mut() {
                let key = format!("{prefix}/{name}");
                let t = state.get(&key).ok_or_else(|| Error::Store(format!("optimizer state `{key}` is missing from the checkpoint")))?;
                if t.data.len() != buf.len() {
                    return Err(Error::Store(format!("optimizer state `{key}` has {} values, expected {}", t.data.len(), buf.len())));
                }
                buf.copy_from_slice(&t.data);
            }
        }
        self.step = step;
        Ok(())
    }
}
