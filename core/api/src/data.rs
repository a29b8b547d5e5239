//! Datasets as the engine sees them: dense f32 inputs and class or regression targets.

use serde::{Deserialize, Serialize};

use crate::tensor::HostTensor;

/// What a task asks the network to predict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Targets {
    /// One class label per example, each `< n_classes`.
    Classes {
        /// Labels, one per example.
        labels: Vec<u32>,
        /// Number of classes.
        n_classes: usize,
    },
    /// Real-valued targets, shape `[n, output_dim]`.
    Regression {
        /// The targets.
        values: HostTensor,
    },
}

impl Targets {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Regression { values } => values.shape.first().copied().unwrap_or(0),
        }
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One split of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Inputs, shape `[n, ...input_shape]`. Token tasks use one-hot `[n, n_ctx, vocab]`.
    pub x: HostTensor,
    /// Targets, one per example.
    pub y: Targets,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.x.shape.first().copied().unwrap_or(0)
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `indices`, in that order (for minibatches and scoring subsets).
    pub fn select(&self, indices: &[usize]) -> Split {
        let row: usize = self.x.shape[1..].iter().product();
        let mut x = Vec::with_capacity(indices.len() * row);
        for &i in indices {
            x.extend_from_slice(&self.x.data[i * row..(i + 1) * row]);
        }
        let mut shape = self.x.shape.clone();
        shape[0] = indices.len();
        let y = match &self.y {
            Targets::Classes { labels, n_classes } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                n_classes: *n_classes,
            },
            Targets::Regression { values } => {
                let w: usize = values.shape[1..].iter().product();
                let mut v = Vec::with_capacity(indices.len() * w);
                for &i in indices {
                    v.extend_from_slice(&values.data[i * w..(i + 1) * w]);
                }
                let mut s = values.shape.clone();
                s[0] = indices.len();
                Targets::Regression { values: HostTensor::new(s, v) }
            }
        };
        Split { x: HostTensor::new(shape, x), y }
    }
}

/// Token structure of inputs, for architectures that embed tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Vocabulary size (the one-hot width).
    pub vocab: usize,
    /// Tokens per example.
    pub n_ctx: usize,
}

/// Shape facts an architecture needs to build itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Shape of one input example.
    pub input_shape: Vec<usize>,
    /// Width of the network's output (classes, or regression outputs).
    pub output_dim: usize,
    /// Present for token tasks.
    pub tokens: Option<TokenInfo>,
}

/// What a dataset will hold, known from its parameters without building it (for memory
/// estimates before anything runs).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetShape {
    /// Shape facts.
    pub info: DatasetInfo,
    /// Training examples.
    pub train: usize,
    /// Test examples.
    pub test: usize,
}

/// A task's data: train and test splits and their shape facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Human-readable description, e.g. `(a+b) mod 67, 911 train / 1367 test`.
    pub description: String,
    /// Shape facts.
    pub info: DatasetInfo,
    /// The training split.
    pub train: Split,
    /// The held-out split.
    pub test: Split,
}
