//! Optimizers with PyTorch semantics.

use serde::{Deserialize, Serialize};

use crate::kernels::{self, cpu};
use ticketlab_api::tensor::{HostTensor, NamedTensors, ParamDef};
use ticketlab_api::{Error, Result};

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
        Self {
            kind: OptimizerKind::AdamW,
            lr: 1e-3,
            weight_decay: 1.0,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
        }
    }
}

/// Optimizer state: moments of every parameter in two flat buffers, and the step count.
pub struct OptimizerState {
    config: OptimizerConfig,
    step: u64,
    /// Each parameter's name, shape and range in the flat buffers, in the architecture's order.
    slots: Vec<Slot>,
    /// First moment (AdamW) or momentum buffer (SGD) of every parameter.
    first: Vec<f32>,
    /// Second moment of every parameter (AdamW only; empty for SGD).
    second: Vec<f32>,
}

/// Where one parameter's state lies in the flat buffers.
struct Slot {
    name: String,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

impl OptimizerState {
    /// Zeroed state for `params`.
    pub fn new(config: OptimizerConfig, params: &[ParamDef]) -> Self {
        let mut slots = Vec::with_capacity(params.len());
        let mut total = 0;
        for p in params {
            let len: usize = p.shape.iter().product();
            slots.push(Slot {
                name: p.name.clone(),
                shape: p.shape.clone(),
                range: total..total + len,
            });
            total += len;
        }
        let second =
            if config.kind == OptimizerKind::AdamW { vec![0.0; total] } else { Vec::new() };
        Self { config, step: 0, slots, first: vec![0.0; total], second }
    }

    /// Steps completed.
    pub(crate) fn steps(&self) -> u64 {
        self.step
    }

    /// Sets the learning rate of the next steps.
    pub(crate) fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Updates parameter number `index` (in the order given to [`OptimizerState::new`]) in
    /// place for the step being taken; masked entries end at exactly +0.0.
    ///
    /// One pass over the parameter (in pieces on the kernel threads when it is large), written
    /// as zipped slices so the compiler vectorises it. The arithmetic follows PyTorch's single-tensor implementations
    /// operation by operation:
    /// AdamW: `p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
    /// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
    /// SGD: `g += wd*p; buf = g (first step) or momentum*buf + g; p -= lr*buf`.
    pub fn update(&mut self, index: usize, p: &mut [f32], g: &[f32], mask: Option<&[f32]>) {
        let c = self.config;
        let t = self.step + 1;
        let range = self.slots[index].range.clone();
        assert!(
            p.len() == range.len() && g.len() == range.len(),
            "parameter, gradient and optimizer state differ in size"
        );
        let m = &mut self.first[range.clone()];
        // Assign rather than multiply: a masked weight is +0.0, never -0.0.
        let keep = |w: f32, k: f32| if k == 0.0 { 0.0 } else { w };
        // Large parameters are updated in pieces on the kernel threads; each element's update
        // reads only its own state, so the bits are those of one thread.
        let threads = kernels::threads();
        let chunk = p.len().div_ceil(cpu::parts(threads, 5 * p.len(), p.len())).max(1);
        let masks = |i: usize, len: usize| mask.map(|k| &k[i * chunk..][..len]);
        match c.kind {
            OptimizerKind::AdamW => {
                let v = &mut self.second[range];
                let decay = (1.0 - c.lr * c.weight_decay) as f32;
                let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
                let bias1 = 1.0 - c.beta1.powi(t as i32);
                let bias2_sqrt = ((1.0 - c.beta2.powi(t as i32)).sqrt()) as f32;
                let step_size = (c.lr / bias1) as f32;
                let eps = c.eps as f32;
                let w1 = 1.0 - b1;
                let adamw = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
                    *p *= decay;
                    *m += w1 * (g - *m);
                    *v = *v * b2 + (1.0 - b2) * g * g;
                    let denom = v.sqrt() / bias2_sqrt + eps;
                    *p += -step_size * (*m / denom);
                };
                let pieces: Vec<_> = p
                    .chunks_mut(chunk)
                    .zip(g.chunks(chunk))
                    .zip(m.chunks_mut(chunk).zip(v.chunks_mut(chunk)))
                    .enumerate()
                    .map(|(i, ((p, g), (m, v)))| (masks(i, p.len()), p, g, m, v))
                    .collect();
                cpu::split_pieces(threads, pieces, &|(mask, p, g, m, v)| {
                    let state = p.iter_mut().zip(g).zip(m.iter_mut().zip(v.iter_mut()));
                    match mask {
                        Some(mask) => state.zip(mask).for_each(|(((p, &g), (m, v)), &k)| {
                            adamw(p, g, m, v);
                            *p = keep(*p, k);
                        }),
                        None => state.for_each(|((p, &g), (m, v))| adamw(p, g, m, v)),
                    }
                });
            }
            OptimizerKind::Sgd => {
                let (lr, wd, mu) = (c.lr as f32, c.weight_decay as f32, c.beta1 as f32);
                let sgd = |p: &mut f32, g: f32, m: &mut f32| {
                    let gi = g + wd * *p;
                    let d = if mu == 0.0 {
                        gi
                    } else {
                        *m = if t == 1 { gi } else { mu * *m + gi };
                        *m
                    };
                    *p -= lr * d;
                };
                let pieces: Vec<_> = p
                    .chunks_mut(chunk)
                    .zip(g.chunks(chunk))
                    .zip(m.chunks_mut(chunk))
                    .enumerate()
                    .map(|(i, ((p, g), m))| (masks(i, p.len()), p, g, m))
                    .collect();
                cpu::split_pieces(threads, pieces, &|(mask, p, g, m)| {
                    let state = p.iter_mut().zip(g).zip(m.iter_mut());
                    match mask {
                        Some(mask) => state.zip(mask).for_each(|(((p, &g), m), &k)| {
                            sgd(p, g, m);
                            *p = keep(*p, k);
                        }),
                        None => state.for_each(|((p, &g), m)| sgd(p, g, m)),
                    }
                });
            }
        }
    }

    /// Sets to 0 the state of parameter `index` where `mask` is 0 (weights a mask removed).
    pub(crate) fn clear_removed(&mut self, index: usize, mask: &[f32]) {
        let range = self.slots[index].range.clone();
        for buf in [&mut self.first, &mut self.second] {
            if buf.is_empty() {
                continue;
            }
            for (x, &k) in buf[range.clone()].iter_mut().zip(mask) {
                if k == 0.0 {
                    *x = 0.0;
                }
            }
        }
    }

    /// Marks the step as taken.
    pub fn finish_step(&mut self) {
        self.step += 1;
    }

    /// The state as named tensors (`exp_avg/NAME`, `exp_avg_sq/NAME` or `momentum/NAME`).
    pub(crate) fn export(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        for (prefix, buf) in self.buffers() {
            for slot in &self.slots {
                out.insert(
                    format!("{prefix}/{}", slot.name),
                    HostTensor::new(slot.shape.clone(), buf[slot.range.clone()].to_vec()),
                );
            }
        }
        out
    }

    /// Restores [`OptimizerState::export`]ed state after `step` steps.
    pub(crate) fn import(&mut self, state: &NamedTensors, step: u64) -> Result<()> {
        let first = self.first_name();
        for (prefix, buf) in [(first, &mut self.first), ("exp_avg_sq", &mut self.second)] {
            if buf.is_empty() {
                continue;
            }
            for slot in &self.slots {
                let key = format!("{prefix}/{}", slot.name);
                let t = state.get(&key).ok_or_else(|| {
                    Error::Store(format!("optimizer state `{key}` is missing from the checkpoint"))
                })?;
                if t.data.len() != slot.range.len() {
                    return Err(Error::Store(format!(
                        "optimizer state `{key}` has {} values, expected {}",
                        t.data.len(),
                        slot.range.len()
                    )));
                }
                buf[slot.range.clone()].copy_from_slice(&t.data);
            }
        }
        self.step = step;
        Ok(())
    }

    /// The name of the first buffer in checkpoints.
    fn first_name(&self) -> &'static str {
        if self.config.kind == OptimizerKind::AdamW { "exp_avg" } else { "momentum" }
    }

    /// The non-empty state buffers with their checkpoint names.
    fn buffers(&self) -> Vec<(&'static str, &[f32])> {
        [(self.first_name(), self.first.as_slice()), ("exp_avg_sq", self.second.as_slice())]
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .collect()
    }
}
