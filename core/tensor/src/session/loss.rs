//! Losses and objectives: the training loss in the graph, its f64 form on the host, and the
//! scores of an evaluation.

use ticketlab_api::data::Targets;
use ticketlab_api::tensor::graph::{GraphBuilder, Var};
use ticketlab_api::{Error, Result};

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Softmax cross-entropy against class labels.
    CrossEntropy,
    /// Mean squared error against one-hot labels (classification) or targets (regression).
    Mse,
}

/// Where the training loss and its gradient with respect to the outputs are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossPrecision {
    /// In the graph, in f32.
    #[default]
    F32,
    /// On the host, in f64, as the reference code's `cross_entropy_high_precision` (one extra
    /// forward pass per step).
    F64,
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

impl From<LossKind> for Objective {
    fn from(loss: LossKind) -> Self {
        match loss {
            LossKind::CrossEntropy => Objective::CrossEntropy { temperature: 1.0 },
            LossKind::Mse => Objective::Mse,
        }
    }
}

/// Loss and accuracy over a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Mean loss (computed in f64).
    pub loss: f64,
    /// Accuracy (classification only).
    pub accuracy: Option<f64>,
}

/// The loss graph node for `objective` on `outputs` against a targets leaf.
pub(super) fn objective_node(
    g: &mut GraphBuilder,
    objective: Objective,
    outputs: Var,
) -> Result<(Var, Option<Var>)> {
    let shape = outputs.shape();
    match objective {
        Objective::CrossEntropy { temperature } => {
            let y = g.input("targets", &shape);
            let logits =
                if temperature == 1.0 { outputs } else { g.scale(outputs, 1.0 / temperature)? };
            Ok((g.cross_entropy(logits, y)?, Some(y)))
        }
        Objective::Mse => {
            let y = g.input("targets", &shape);
            Ok((g.mse(outputs, y)?, Some(y)))
        }
        Objective::SumOutputs => Ok((g.sum_all(outputs)?, None)),
    }
}

/// Targets as the dense `[n, outputs]` tensor the loss graph reads.
pub(super) fn dense_targets(y: &Targets, width: usize) -> Result<Vec<f32>> {
    match y {
        Targets::Classes { labels, n_classes } => {
            if *n_classes != width {
                return Err(Error::shape(
                    "targets",
                    format!("{n_classes} classes but the network has {width} outputs"),
                ));
            }
            let mut out = vec![0.0; labels.len() * width];
            for (i, &l) in labels.iter().enumerate() {
                if l as usize >= width {
                    return Err(Error::shape(
                        "targets",
                        format!("label {l} of example {i} is not one of the {width} classes"),
                    ));
                }
                out[i * width + l as usize] = 1.0;
            }
            Ok(out)
        }
        Targets::Regression { values } => {
            if values.data.len() != y.len() * width {
                return Err(Error::shape(
                    "targets",
                    format!("regression targets {:?} vs {width} outputs", values.shape),
                ));
            }
            Ok(values.data.clone())
        }
    }
}

/// The mean loss of `outputs` (`[n, width]`) against `y`, in f64, and with `grad` its gradient
/// with respect to the outputs (written as f32).
pub(super) fn host_loss(
    outputs: &[f32],
    width: usize,
    y: &Targets,
    loss: LossKind,
    mut grad: Option<&mut [f32]>,
) -> Result<f64> {
    let n = y.len();
    if outputs.len() != n * width {
        return Err(Error::shape(
            "evaluation",
            format!("{} outputs for {n} examples of width {width}", outputs.len()),
        ));
    }
    let dense = dense_targets(y, width)?;
    let mut total = 0.0f64;
    for i in 0..n {
        let row = &outputs[i * width..(i + 1) * width];
        let target = &dense[i * width..(i + 1) * width];
        let g = grad.as_deref_mut().map(|g| &mut g[i * width..(i + 1) * width]);
        match loss {
            LossKind::CrossEntropy => {
                let Targets::Classes { labels, .. } = y else {
                    return Err(Error::param(
                        "loss",
                        "cross-entropy needs class labels; use `loss: mse` for regression",
                    ));
                };
                let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
                let sum: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
                total += m + sum.ln() - f64::from(row[labels[i] as usize]);
                if let Some(g) = g {
                    for ((gj, &v), &t) in g.iter_mut().zip(row).zip(target) {
                        *gj = (((f64::from(v) - m).exp() / sum - f64::from(t)) / n as f64) as f32;
                    }
                }
            }
            LossKind::Mse => {
                total += row
                    .iter()
                    .zip(target)
                    .map(|(&o, &t)| (f64::from(o) - f64::from(t)).powi(2))
                    .sum::<f64>()
                    / width as f64;
                if let Some(g) = g {
                    for ((gj, &o), &t) in g.iter_mut().zip(row).zip(target) {
                        *gj = (2.0 * (f64::from(o) - f64::from(t)) / (n * width) as f64) as f32;
                    }
                }
            }
        }
    }
    Ok(total / n.max(1) as f64)
}

/// Loss (f64) and accuracy from network outputs.
pub(super) fn score_outputs(
    outputs: &[f32],
    width: usize,
    y: &Targets,
    loss: LossKind,
) -> Result<EvalResult> {
    let total = host_loss(outputs, width, y, loss, None)?;
    let accuracy = match y {
        Targets::Classes { labels, .. } => {
            let mut correct = 0usize;
            for (i, row) in outputs.chunks_exact(width).enumerate() {
                // First maximum wins, as torch.argmax does.
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = j;
                    }
                }
                correct += usize::from(best == labels[i] as usize);
            }
            Some(correct as f64 / labels.len().max(1) as f64)
        }
        Targets::Regression { .. } => None,
    };
    Ok(EvalResult { loss: total, accuracy })
}
