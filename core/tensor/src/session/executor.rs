//! Runs a compiled graph as luminal's executor does, less the work it repeats at every step.
//!
//! luminal's `Graph::execute` copies each input's view (a `ShapeTracker`, about 5 KB of symbolic
//! expressions) into the kernel's inputs and then evaluates every one of its 30 expressions
//! again, at each node of each step: most of the "graph overhead" of `bench --profile`. A
//! [`Schedule`] orders the nodes, counts each output's readers and evaluates the views once,
//! the first time a graph runs; a step then only copies the evaluated views. The order, which
//! inputs a kernel is handed (read last, kept by nobody) or lent, and what is dropped at the end
//! are luminal's.
//!
//! A graph of several arms ([`crate::kernels::ArmPass`]) is walked one arm at a time: the nodes
//! every arm shares run with the first arm, and each armed node runs its kernel on one arm's
//! inputs, so that only one arm's intermediate values are in the caches at a time, as when the
//! arm trains alone. Run by luminal's executor, an armed node runs its kernel for every arm
//! before the next node starts, so every arm's values pass through the caches at once: the
//! quickstart's six arms took about 8% more CPU time that way than trained one by one, and a
//! batch of the paper MLP's sparse tickets about 20% more wall time (tests/bench/BENCHMARKS.md).

use std::collections::HashMap;

use luminal::graph::{Graph, NodeIndex};
use luminal::op::InputTensor;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::algo::toposort;
use luminal::prelude::petgraph::visit::EdgeRef;
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use crate::kernels::{self, PerArm};

/// An output of a node: the node and the output's index.
type Output = (NodeIndex, u8);

/// A compiled graph's nodes in the order they run, each with its inputs.
#[derive(Debug)]
pub(super) struct Schedule {
    steps: Vec<Step>,
    /// How many inputs read each output, by the output's slot.
    readers: Vec<usize>,
    /// How many arms the graph runs (1 without armed nodes).
    arms: usize,
}

/// One node and, in input order, each input's output, that output's slot and its view.
#[derive(Debug)]
struct Step {
    node: NodeIndex,
    inputs: Vec<(Output, usize, ShapeTracker)>,
    /// For an armed node, per input: whether it holds one value per arm.
    per_arm: Option<Vec<bool>>,
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
                Step { node, inputs, per_arm: None }
            })
            .collect::<Vec<_>>();
        let mut schedule = Schedule { steps, readers, arms: 1 };
        for step in &mut schedule.steps {
            let op = cx.graph.node_weight(step.node).expect("a scheduled node is in the graph");
            if let Some((arms, per_arm)) = kernels::armed_inputs(op.as_ref()) {
                debug_assert!(schedule.arms == 1 || schedule.arms == arms, "one arm count");
                schedule.arms = arms;
                step.per_arm = Some(per_arm);
            }
        }
        schedule
    }

    /// Runs every node of `cx` whose output is not set yet, in order (one arm at a time in a
    /// graph of several arms), then drops every tensor not kept (`no_delete`), as
    /// `Graph::execute` does.
    pub(super) fn run(&self, cx: &mut Graph) {
        if self.arms > 1 {
            self.run_by_arm(cx);
        } else {
            let mut unread = self.readers.clone();
            for step in &self.steps {
                Self::run_shared(cx, step, &mut unread);
            }
        }
        cx.reset();
    }

    /// Runs `step`, a node every arm shares, unless its output is set: an input it reads last
    /// (`unread` counts the readers still to run) and nobody keeps is handed over; the rest are
    /// lent.
    fn run_shared(cx: &mut Graph, step: &Step, unread: &mut [usize]) {
        if cx.tensors.contains_key(&(step.node, 0)) {
            return;
        }
        let handed = step.handed(
            unread,
            |_, output| !cx.no_delete.contains(&output.0),
            |output| cx.tensors.remove(output),
        );
        let sources = step.sources(handed, |_, output| {
            cx.tensors.get(output).expect("an input runs before its readers")
        });
        let op = cx.graph.node_weight_mut(step.node).expect("a scheduled node is in the graph");
        let outputs = op.process(sources);
        for (i, tensor) in outputs.into_iter().enumerate() {
            cx.tensors.insert((step.node, i as u8), tensor);
        }
        step.read(unread);
    }

    /// Walks the graph once per arm. The shared nodes run with the first arm; an armed node runs
    /// its kernel on this arm's inputs: its own values ([`PerArm`] leaves, or what this arm's
    /// nodes computed) and the shared ones, which are only lent, since later arms read them too.
    /// The kept outputs of armed nodes are gathered into one [`PerArm`] value each.
    fn run_by_arm(&self, cx: &mut Graph) {
        // Counts only the shared readers' runs: an output an armed node also reads never gets
        // to its last reader here, so it is never handed over.
        let mut shared_unread = self.readers.clone();
        let mut kept: HashMap<Output, Vec<Tensor>> = HashMap::new();
        for arm in 0..self.arms {
            let mut unread = self.readers.clone();
            let mut values: HashMap<Output, Tensor> = HashMap::new();
            for step in &self.steps {
                let Some(per_arm) = &step.per_arm else {
                    if arm == 0 {
                        Self::run_shared(cx, step, &mut shared_unread);
                    }
                    continue;
                };
                if cx.tensors.contains_key(&(step.node, 0)) {
                    continue;
                }
                // This arm's value read last by this node, and not kept, is handed over.
                let handed = step.handed(
                    &unread,
                    |input, output| per_arm[input] && !cx.no_delete.contains(&output.0),
                    |output| values.remove(output),
                );
                let sources = step.sources(handed, |input, output| match values.get(output) {
                    Some(tensor) if per_arm[input] => tensor,
                    _ => {
                        let stored = cx.tensors.get(output);
                        let tensor = stored.expect("an input runs before its readers");
                        if per_arm[input] { arm_of(tensor, arm) } else { tensor }
                    }
                });
                let op =
                    cx.graph.node_weight_mut(step.node).expect("a scheduled node is in the graph");
                let kernel = kernels::per_arm_kernel(op.as_mut()).expect("scheduled as armed");
                for (i, tensor) in kernel.process(sources).into_iter().enumerate() {
                    values.insert((step.node, i as u8), tensor);
                }
                step.read(&mut unread);
            }
            for (output, tensor) in values {
                if cx.no_delete.contains(&output.0) {
                    kept.entry(output)
                        .or_insert_with(|| Vec::with_capacity(self.arms))
                        .push(tensor);
                }
            }
        }
        for (output, arms) in kept {
            cx.tensors.insert(output, Tensor::new(PerArm(arms)));
        }
    }
}

impl Step {
    /// Per input, the tensor handed over to this step (taken by `take`): one it reads last
    /// (`unread` counts the readers still to run) where `may_hand(input, output)` allows;
    /// `None` for the others, which are lent.
    fn handed(
        &self,
        unread: &[usize],
        may_hand: impl Fn(usize, &Output) -> bool,
        mut take: impl FnMut(&Output) -> Option<Tensor>,
    ) -> Vec<Option<Tensor>> {
        let last = |input: usize, output: &Output, slot: usize| {
            unread[slot] == 1 && may_hand(input, output)
        };
        (self.inputs.iter().enumerate())
            .map(|(input, (output, slot, _))| {
                last(input, output, *slot).then(|| take(output)).flatten()
            })
            .collect()
    }

    /// The step's kernel inputs with their views: the `handed` tensors as its own, the others
    /// lent by `lend(input, output)`.
    fn sources<'a>(
        &self,
        handed: Vec<Option<Tensor>>,
        lend: impl Fn(usize, &Output) -> &'a Tensor,
    ) -> Vec<(InputTensor<'a>, ShapeTracker)> {
        (self.inputs.iter().enumerate().zip(handed))
            .map(|((input, (output, _, view)), handed)| {
                let tensor = match handed {
                    Some(tensor) => InputTensor::Owned(tensor),
                    None => InputTensor::Borrowed(lend(input, output)),
                };
                (tensor, *view)
            })
            .collect()
    }

    /// Counts this step's inputs as read.
    fn read(&self, unread: &mut [usize]) {
        for (_, slot, _) in &self.inputs {
            unread[*slot] -= 1;
        }
    }
}

/// Arm `arm`'s value of a tensor that holds one per arm.
fn arm_of(tensor: &Tensor, arm: usize) -> &Tensor {
    let arms = tensor.data.as_any().downcast_ref::<PerArm>();
    &arms.expect("an armed input holds one value per arm").0[arm]
}

#[cfg(test)]
mod tests {
    use luminal::tensor::Tensor;

    use super::*;
    use crate::autograd;
    use crate::kernels;
    use crate::tests::{bits_of, random};
    use ticketlab_api::runtime::Device;
    use ticketlab_api::tensor::graph::GraphBuilder;

    /// A compiled graph (products, a fused ReLU and log-softmax, reductions, their gradients)
    /// over set inputs, the nodes it keeps (its loss and gradients), and its weight leaf `w`.
    /// `x * x` is read both by a node that depends on `x` alone and by one that depends on `w`.
    fn compiled() -> (GraphBuilder, Vec<NodeIndex>, NodeIndex) {
        let mut g = GraphBuilder::new();
        let x = g.input("x", &[40, 6]);
        let w = g.input("w", &[6, 9]);
        let h = g.matmul(x, w).unwrap();
        let r = g.relu(h).unwrap();
        let lp = g.log_softmax(r).unwrap();
        let sq = g.mul(lp, h).unwrap();
        let xx = g.mul(x, x).unwrap();
        let xw = g.matmul(xx, w).unwrap();
        let terms = [g.sum_all(sq).unwrap(), g.sum_all(xw).unwrap(), g.sum_all(xx).unwrap()];
        let partial = g.add(terms[0], terms[1]).unwrap();
        let loss = g.add(partial, terms[2]).unwrap();
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
        (g, kept, w.node)
    }

    /// [`compiled`] for three arms of `w` (`x` shared): each arm's `w` as a [`PerArm`] leaf.
    fn armed() -> (GraphBuilder, Vec<NodeIndex>) {
        let (mut g, mut kept, w) = compiled();
        kernels::arm(&mut g.cx, &mut kept, vec![w], 3);
        let arms = (0..3).map(|arm| Tensor::new(random(&[6, 9], 10 + arm, -1.0, 1.0))).collect();
        g.cx.set_tensor(w, 0, Tensor::new(PerArm(arms)));
        (g, kept)
    }

    /// Each arm's kept outputs, arm by arm.
    fn arm_values(g: &mut GraphBuilder, kept: &[NodeIndex]) -> Vec<Vec<Vec<u32>>> {
        kept.iter()
            .map(|&id| {
                let t = g.cx.get_tensor_ref(id, 0).expect("kept");
                let arms = t.data.as_any().downcast_ref::<PerArm>().expect("one value per arm");
                let bits = |t: &Tensor| {
                    let v = t.data.as_any().downcast_ref::<Vec<f32>>().expect("CPU tensors");
                    v.iter().map(|x| x.to_bits()).collect()
                };
                arms.0.iter().map(bits).collect()
            })
            .collect()
    }

    /// A graph of several arms, walked one arm at a time, gives every arm the bits luminal's
    /// walk (each node for every arm in turn) gives it, and leaves the same tensors.
    #[test]
    fn a_graph_of_arms_walked_arm_by_arm_gives_each_arm_its_bits() {
        let (mut theirs, kept) = armed();
        theirs.cx.execute();
        let (mut ours, ours_kept) = armed();
        let schedule = Schedule::of(&ours.cx);
        assert_eq!(schedule.arms, 3);
        // Some computed output (`x * x`'s) is read by a shared node and an armed one.
        let shared_and_armed =
            schedule.steps.iter().filter(|s| s.per_arm.is_none()).any(|shared| {
                let (read_by_shared, read_by_armed) =
                    schedule.steps.iter().fold((false, false), |seen, s| {
                        let reads = s.inputs.iter().any(|(output, _, _)| output.0 == shared.node);
                        (
                            seen.0 || reads && s.per_arm.is_none(),
                            seen.1 || reads && s.per_arm.is_some(),
                        )
                    });
                !shared.inputs.is_empty() && read_by_shared && read_by_armed
            });
        assert!(shared_and_armed, "a shared output feeds both kinds of node");
        for _ in 0..2 {
            schedule.run(&mut ours.cx);
            let expected = arm_values(&mut theirs, &kept);
            assert!(arm_values(&mut ours, &ours_kept) == expected, "other values");
            let arms = &expected[0];
            assert!(arms[0] != arms[1], "the arms differ");
            assert_only_kept_left(&ours.cx);
            for &id in &ours_kept {
                ours.cx.tensors.remove(&(id, 0));
            }
        }
    }

    /// Asserts that `cx` holds a tensor for every kept node and for nothing else.
    fn assert_only_kept_left(cx: &Graph) {
        let mut left: Vec<NodeIndex> = cx.tensors.keys().map(|(n, _)| *n).collect();
        left.sort();
        left.dedup();
        assert!(left.iter().all(|n| cx.no_delete.contains(n)), "an intermediate was kept");
        assert_eq!(left.len(), cx.no_delete.len(), "a kept tensor was dropped");
    }

    /// A schedule computes what luminal's executor computes, run after run, and leaves only the
    /// kept tensors (the inputs and outputs) behind, as it does.
    #[test]
    fn a_schedule_runs_a_graph_as_luminal_does() {
        let (mut theirs, kept, _) = compiled();
        theirs.cx.execute();
        let (mut ours, ours_kept, _) = compiled();
        let schedule = Schedule::of(&ours.cx);
        for _ in 0..3 {
            schedule.run(&mut ours.cx);
            assert!(bits_of(&ours, &ours_kept) == bits_of(&theirs, &kept), "other values");
            assert_only_kept_left(&ours.cx);
            // The next run recomputes every output (the kept outputs are dropped first, as a
            // session does before it runs a step again).
            for &id in &ours_kept {
                ours.cx.tensors.remove(&(id, 0));
            }
        }
    }
}
