//! Host-side tensors: what plugins, artifacts and the store see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A dense row-major f32 tensor in host memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from a shape and its data; panics if the sizes disagree (a programming error).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "HostTensor::new: shape {shape:?} vs {} values",
            data.len()
        );
        Self { shape, data }
    }

    /// All zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Self { shape, data: vec![0.0; n] }
    }

    /// Every entry `value`.
    pub fn full(shape: Vec<usize>, value: f32) -> Self {
        let n = shape.iter().product();
        Self { shape, data: vec![value; n] }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Sum of absolute values, accumulated in f64.
    pub fn l1(&self) -> f64 {
        self.data.iter().map(|v| f64::from(v.abs())).sum()
    }

    /// Euclidean norm, accumulated in f64.
    pub fn l2(&self) -> f64 {
        self.data.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt()
    }
}

/// Named tensors (parameters, gradients, scores, masks), sorted by name.
pub type NamedTensors = BTreeMap<String, HostTensor>;

/// A mask per prunable parameter: entries are exactly 0.0 (pruned) or 1.0 (kept).
pub type MaskSet = BTreeMap<String, HostTensor>;
