//! [`TimedPass`]: a timing wrapper around every kernel of a graph compiled while this thread
//! records a [`crate::profile`].

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::Graph;
use luminal::op::{Function, InputTensor, Operator};
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use super::PerArm;
use super::arms::Placeholder;
use crate::profile::{self, Part};

/// A kernel whose calls are tallied under `part` while its thread records.
#[derive(Debug)]
struct Timed {
    kernel: Box<dyn Operator>,
    part: Part,
    /// What the kernel computes and its node id, for the profile's list of kernels.
    label: String,
}

impl PartialEq for Timed {
    /// Never merged with another node (no pass runs after this one but [`super::ArmPass`],
    /// which merges nothing).
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl Operator for Timed {
    fn process(&mut self, inputs: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        if !profile::recording() {
            return self.kernel.process(inputs);
        }
        let read: usize = inputs.iter().map(|(t, _)| floats(t.borrowed())).sum();
        profile::kernel(self.part, &self.label, 4.0 * read as f64, || {
            let out = self.kernel.process(inputs);
            let written: usize = out.iter().map(floats).sum();
            (out, 4.0 * written as f64)
        })
    }
}

/// The floats a tensor's buffer holds (every arm's for a [`PerArm`] value; 0 for a buffer
/// that is not on the host).
fn floats(t: &Tensor) -> usize {
    let data = t.data.as_any();
    if let Some(v) = data.downcast_ref::<Vec<f32>>() {
        v.len()
    } else if let Some(arms) = data.downcast_ref::<PerArm>() {
        arms.0.iter().map(floats).sum()
    } else {
        0
    }
}

/// Wraps every kernel (not the input leaves, which never run) in a [`Timed`] one, its part
/// and label given by `describe`.
pub(super) struct TimedPass(pub(super) fn(&dyn Operator) -> (Part, String));

impl Compiler for TimedPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, _: T) {
        let nodes: Vec<_> = graph.graph.node_indices().collect();
        for node in nodes {
            let op = graph.graph.node_weight_mut(node).expect("a listed node exists");
            if op.as_any().is::<Function>() {
                continue;
            }
            let (part, what) = (self.0)(op.as_ref());
            let label = format!("{what} #{}", node.index());
            let kernel = std::mem::replace(op, Box::new(Placeholder));
            *op = Box::new(Timed { kernel, part, label });
        }
    }
}
