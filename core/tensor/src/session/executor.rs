//! Runs a compiled graph as luminal's executor does, less the work it repeats at every step.
//!
//! luminal's `Graph::execute` copies each input's view (a `ShapeTracker`, about 5 KB of symbolic
//! expressions) into the kernel's inputs and then evaluates every one of its 30 expressions
//! again, at each node of each step: most of the "graph overhead" of `bench --profile`. A
//! [`Schedule`] orders the nodes, counts each output's readers and evaluates the views once,
//! the first time a graph runs; a step then only copies the evaluated views. The order, which
//! inputs a kernel is handed (read last, kept by nobody) or lent, and what is dropped at the end
//! are luminal's.

use std::collections::HashMap;

use luminal::graph::{Graph, NodeIndex};
use luminal::op::InputTensor;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::algo::toposort;
use luminal::prelude::petgraph::visit::EdgeRef;
use luminal::shape::ShapeTracker;

/// An output of a node: the node and the output's index.
type Output = (NodeIndex, u8);

/// A compiled graph's nodes in the order they run, each with its inputs.
#[derive(Debug)]
pub(super) struct Schedule {
    steps: Vec<Step>,
    /// How many inputs read each output, by the output's slot.
    readers: Vec<usize>,
}

/// One node and, in input order, each input's output, that output's slot and its view.
#[derive(Debug)]
struct Step {
    node: NodeIndex,
    inputs: Vec<(Output, usize, ShapeTracker)>,
}

impl Schedule {
    /// The schedule of `cx`, compiled: luminal's topological order, its views evaluated with
    /// the graph's dynamic dimensions.
    pub(super) fn of(cx: &Graph) -> Schedule {
        let order = toposort(&cx.graph, None).expect("a compiled graph has no cycle");
        let mut slots: HashMap<Output, usize> = HashMap::new();
        let mut readers: Vec<usize> = Vec::new();
        let mut stack = Vec::new();
        let steps = order
            .into_iter()
            .map(|node| {
                let mut edges: Vec<(u8, Output, ShapeTracker)> = cx
                    .graph
                    .edges_directed(node, Direction::Incoming)
                    .filter_map(|e| {
                        e.weight().as_data().map(|(i, o, view)| (i, (e.source(), o), view))
                    })
                    .collect();
                edges.sort_by_key(|(input, _, _)| *input);
                let inputs = edges
                    .into_iter()
                    .map(|(_, output, mut view)| {
                        view.resolve_global_dyn_dims_stack(&cx.dyn_map, &mut stack);
                        let slot = *slots.entry(output).or_insert_with(|| {
                            readers.push(0);
                            readers.len() - 1
                        });
                        readers[slot] += 1;
                        (output, slot, view)
                    })
                    .collect();
                Step { node, inputs }
            })
            .collect();
        Schedule { steps, readers }
    }

    /// Runs every node of `cx` whose output is not set yet, in order, then drops every tensor
    /// not kept (`no_delete`), as `Graph::execute` does.
    pub(super) fn run(&self, cx: &mut Graph) {
        let mut unread = self.readers.clone();
        for step in &self.steps {
            if cx.tensors.contains_key(&(step.node, 0)) {
                continue;
            }
            // An input this node reads last, and nobody keeps, is handed over; the rest are lent.
            let mut handed: Vec<_> = step
                .inputs
                .iter()
                .map(|(output, slot, _)| {
                    (unread[*slot] == 1 && !cx.no_delete.contains(&output.0))
                        .then(|| cx.tensors.remove(output))
                        .flatten()
                })
                .collect();
            let sources = step
                .inputs
                .iter()
                .zip(&mut handed)
                .map(|((output, _, view), handed)| {
                    let tensor = match handed.take() {
                        Some(tensor) => InputTensor::Owned(tensor),
                        None => InputTensor::Borrowed(
                            cx.tensors.get(output).expect("an input runs before its readers"),
                        ),
                    };
                    (tensor, *view)
                })
                .collect();
            let op = cx.graph.node_weight_mut(step.node).expect("a scheduled node is in the graph");
            let outputs = op.process(sources);
            for (i, tensor) in outputs.into_iter().enumerate() {
                cx.tensors.insert((step.node, i as u8), tensor);
            }
            for (_, slot, _) in &step.inputs {
                unread[*slot] -= 1;
            }
        }
        cx.reset();
    }
}

#[cfg(test)]
mod tests {
    use luminal::tensor::Tensor;

    use super::*;
    use crate::autograd;
    use crate::kernels;
    use crate::tests::random;
    use ticketlab_api::runtime::Device;
    use ticketlab_api::tensor::graph::GraphBuilder;

    /// A compiled graph (products, a fused ReLU and log-softmax, a reduction, their gradients)
    /// over set inputs, and the nodes it keeps: its loss and gradients.
    fn compiled() -> (GraphBuilder, Vec<NodeIndex>) {
        let mut g = GraphBuilder::new();
        let x = g.input("x", &[40, 6]);
        let w = g.input("w", &[6, 9]);
        let h = g.matmul(x, w).unwrap();
        let r = g.relu(h).unwrap();
        let lp = g.log_softmax(r).unwrap();
        let sq = g.mul(lp, h).unwrap();
        let loss = g.sum_all(sq).unwrap();
        let grads = autograd::backward(&mut g, loss, &[x, w]).unwrap();
        let mut kept = vec![loss.node];
        kept.extend(grads.into_iter().map(|gr| g.contiguous_if_needed(gr).node));
        for &id in &kept {
            g.cx.no_delete.insert(id);
        }
        kernels::compile(&mut g.cx, &mut kept, None, Device::Cpu);
        for (leaf, data) in
            [(x, random(&[40, 6], 1, -1.0, 1.0)), (w, random(&[6, 9], 2, -1.0, 1.0))]
        {
            g.cx.set_tensor(leaf.node, 0, Tensor::new(data));
            g.cx.no_delete.insert(leaf.node);
        }
        (g, kept)
    }

    fn values(g: &GraphBuilder, kept: &[NodeIndex]) -> Vec<Vec<u32>> {
        kept.iter()
            .map(|&id| {
                let t = g.cx.get_tensor_ref(id, 0).expect("kept");
                let v = t.data.as_any().downcast_ref::<Vec<f32>>().expect("CPU tensors");
                v.iter().map(|x| x.to_bits()).collect()
            })
            .collect()
    }

    /// A schedule computes what luminal's executor computes, run after run, and leaves only the
    /// kept tensors (the inputs and outputs) behind, as it does.
    #[test]
    fn a_schedule_runs_a_graph_as_luminal_does() {
        let (mut theirs, kept) = compiled();
        theirs.cx.execute();
        let (mut ours, ours_kept) = compiled();
        let schedule = Schedule::of(&ours.cx);
        for _ in 0..3 {
            schedule.run(&mut ours.cx);
            assert!(values(&ours, &ours_kept) == values(&theirs, &kept), "other values");
            let mut left: Vec<NodeIndex> = ours.cx.tensors.keys().map(|(n, _)| *n).collect();
            left.sort();
            left.dedup();
            assert!(left.iter().all(|n| ours.cx.no_delete.contains(n)), "an intermediate was kept");
            assert_eq!(left.len(), ours.cx.no_delete.len(), "a kept tensor was dropped");
            // The next run recomputes every output (the kept outputs are dropped first, as a
            // session does before it runs a step again).
            for &id in &ours_kept {
                ours.cx.tensors.remove(&(id, 0));
            }
        }
    }
}
