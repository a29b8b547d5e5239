//! Arms: one compiled graph that trains several networks of the same shapes at once.
//!
//! [`ArmPass`] runs last, on a graph compiled for one arm. Every node that depends on an *armed*
//! leaf (a weight, a mask: one buffer per arm) becomes an [`Armed`] node: it holds one buffer
//! per arm ([`PerArm`]) and runs the node's own kernel once per arm, on that arm's inputs and on
//! the inputs every arm shares (the data, the targets and whatever is computed from them alone,
//! which is computed once). Each arm therefore does exactly the arithmetic of a graph compiled
//! for it alone, in the same order, and gets the same bits; the graph is compiled and scheduled
//! once for all of them. A session walks it one arm at a time ([`per_arm_kernel`],
//! `session::executor`); luminal's own executor runs each node for every arm in turn.

use std::collections::HashSet;

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{InputTensor, Operator};
use luminal::prelude::petgraph::algo::toposort;
use luminal::shape::ShapeTracker;
use luminal::tensor::{Data, Tensor};

/// The value of an armed node: one tensor per arm, in arm order.
#[derive(Debug, Clone)]
pub struct PerArm(pub Vec<Tensor>);

impl Data for PerArm {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// A node of the one-arm graph run once per arm.
#[derive(Debug)]
struct Armed {
    kernel: Box<dyn Operator>,
    /// Per input, in input order: whether it is armed ([`PerArm`]) or shared by every arm.
    armed_inputs: Vec<bool>,
    arms: usize,
}

impl PartialEq for Armed {
    /// Never merged with another node by luminal's passes (none run after this one).
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl Operator for Armed {
    fn process(&mut self, inputs: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        // An owned armed input is split into each arm's owned tensor (a kernel may reuse an
        // owned buffer, as it would alone); everything else is lent to each arm.
        let mut owned: Vec<std::vec::IntoIter<Tensor>> = Vec::new();
        let sources: Vec<(Source, ShapeTracker)> = inputs
            .into_iter()
            .zip(&self.armed_inputs)
            .map(|((input, tracker), &armed)| {
                let source = match (input, armed) {
                    (InputTensor::Borrowed(t), false) => Source::Shared(Lent::Borrowed(t)),
                    (InputTensor::Owned(t), false) => Source::Shared(Lent::Owned(t)),
                    (InputTensor::Borrowed(t), true) => Source::Arms(per_arm(t)),
                    (InputTensor::Owned(t), true) => {
                        owned.push(into_arms(t).into_iter());
                        Source::OwnedArms(owned.len() - 1)
                    }
                };
                (source, tracker)
            })
            .collect();
        let mut outputs: Vec<Vec<Tensor>> = Vec::new();
        for arm in 0..self.arms {
            let inputs = sources
                .iter()
                .map(|(source, tracker)| {
                    let input = match source {
                        Source::Shared(Lent::Borrowed(t)) => InputTensor::Borrowed(t),
                        Source::Shared(Lent::Owned(t)) => InputTensor::Borrowed(t),
                        Source::Arms(arms) => InputTensor::Borrowed(&arms.0[arm]),
                        Source::OwnedArms(i) => InputTensor::Owned(
                            owned[*i].next().expect("an armed input holds a tensor per arm"),
                        ),
                    };
                    (input, *tracker)
                })
                .collect();
            let results = self.kernel.process(inputs);
            outputs.resize_with(results.len(), || Vec::with_capacity(self.arms));
            for (output, tensor) in outputs.iter_mut().zip(results) {
                output.push(tensor);
            }
        }
        outputs.into_iter().map(|arms| Tensor::new(PerArm(arms))).collect()
    }
}

/// The kernel an armed node runs once per arm, for a walk of the graph that runs one arm at a
/// time (`session::executor`); `None` for a node every arm shares.
pub fn per_arm_kernel(op: &mut dyn Operator) -> Option<&mut (dyn Operator + 'static)> {
    op.as_any_mut().downcast_mut::<Armed>().map(|armed| armed.kernel.as_mut())
}

/// For an armed node: how many arms it runs, and per input whether that input holds one value
/// per arm ([`PerArm`]) rather than one every arm shares; `None` for a shared node.
pub fn armed_inputs(op: &dyn Operator) -> Option<(usize, Vec<bool>)> {
    op.as_any().downcast_ref::<Armed>().map(|armed| (armed.arms, armed.armed_inputs.clone()))
}

/// An input of an armed node.
enum Source<'a> {
    /// The same tensor for every arm.
    Shared(Lent<'a>),
    /// One tensor per arm, borrowed.
    Arms(&'a PerArm),
    /// One tensor per arm, owned: the index of their iterator.
    OwnedArms(usize),
}

/// A tensor lent to every arm.
enum Lent<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

/// The arms of an armed node's value.
fn per_arm(t: &Tensor) -> &PerArm {
    t.data.as_any().downcast_ref().expect("an armed node's input holds one tensor per arm")
}

fn into_arms(mut t: Tensor) -> Vec<Tensor> {
    let arms = t.data.as_any_mut().downcast_mut::<PerArm>();
    std::mem::take(&mut arms.expect("an armed node's input holds one tensor per arm").0)
}

/// Makes every node that depends on one of `leaves` an [`Armed`] node of `arms` arms. Run it
/// after every other pass, on a graph whose armed leaves will hold [`PerArm`] values.
#[derive(Debug)]
pub struct ArmPass {
    /// The leaves with one value per arm (weights, masks).
    pub leaves: Vec<NodeIndex>,
    /// How many arms.
    pub arms: usize,
}

impl Compiler for ArmPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, _: T) {
        let order = toposort(&graph.graph, None).expect("a compiled graph has no cycles");
        let mut armed: HashSet<NodeIndex> = self.leaves.iter().copied().collect();
        for node in order {
            if armed.contains(&node) {
                continue;
            }
            let armed_inputs: Vec<bool> = graph
                .get_sources(node)
                .iter()
                .map(|(source, _, _)| armed.contains(source))
                .collect();
            if !armed_inputs.contains(&true) {
                continue;
            }
            armed.insert(node);
            let op = graph.graph.node_weight_mut(node).expect("a sorted node exists");
            let kernel = std::mem::replace(op, Box::new(Placeholder));
            *op = Box::new(Armed { kernel, armed_inputs, arms: self.arms });
        }
    }
}

/// Stands in for a kernel while it is moved into a wrapper (an [`Armed`] node, a timed one).
#[derive(Debug, PartialEq)]
pub(super) struct Placeholder;

impl Operator for Placeholder {
    fn process(&mut self, _: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        unreachable!("replaced before the graph runs")
    }
}
