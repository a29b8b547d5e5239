//! Reverse-mode autograd over luminal graphs.
//!
//! [`backward`] walks the graph built by a [`GraphBuilder`] from a scalar output back to the
//! requested leaves and appends the gradient computation as more primitive ops. Because the
//! result is again an ordinary graph of primitives, it can be differentiated once more (double
//! backward, for Hessian-vector products) and compiled by the same kernel passes as the
//! forward pass.
//!
//! Each op's rule yields a gradient in the *logical* space of an input edge; [`GraphBuilder`]
//! views on that edge are then inverted: broadcast axes are summed, slices zero-padded, pads
//! sliced off, permutations undone, and reshapes reshaped back.

use std::collections::{HashMap, HashSet};

use luminal::graph::NodeIndex;
use luminal::op;
use luminal::prelude::petgraph::Direction;
use luminal::shape::ShapeTracker;

use super::contraction::data_inputs;
use ticketlab_api::tensor::graph::{GraphBuilder, Var, view_dims};
use ticketlab_api::{Error, Result};

/// Gradients of the scalar `output` with respect to each of `wrt` (graph leaves or any nodes),
/// each with the node's own shape. Nodes that `output` does not depend on get zeros.
pub fn backward(g: &mut GraphBuilder, output: Var, wrt: &[Var]) -> Result<Vec<Var>> {
    if output.shape().iter().product::<usize>() != 1 {
        return Err(Error::shape(
            "autograd",
            format!("output must be a scalar, got shape {:?}", output.shape()),
        ));
    }
    let targets: HashSet<NodeIndex> = wrt.iter().map(|v| v.node).collect();
    let order = luminal::prelude::petgraph::algo::toposort(&g.cx.graph, None)
        .map_err(|_| Error::shape("autograd", "the graph has a cycle"))?;
    let relevant = relevant_nodes(g, &order, &targets, output.node);

    // The output's gradient is 1, seen through the output's own view.
    let mut grads: HashMap<NodeIndex, Var> = HashMap::new();
    let seed_shape = g.node_shape(output.node).to_vec();
    let seed = g.constant(1.0, &seed_shape);
    grads.insert(output.node, seed);

    for &node in order.iter().rev() {
        if !relevant.contains(&node)
            || targets.contains(&node) && !has_relevant_inputs(g, node, &relevant)
        {
            continue;
        }
        let Some(grad) = grads.get(&node).copied() else { continue };
        let inputs = data_inputs(&g.cx, node);
        let needed: Vec<bool> = inputs.iter().map(|(src, _)| relevant.contains(src)).collect();
        let local = local_gradients(g, node, grad, &inputs, &needed)?;
        for ((src, view), lg) in inputs.into_iter().zip(local) {
            let Some(lg) = lg else { continue };
            if !relevant.contains(&src) {
                continue;
            }
            let src_shape = g.node_shape(src).to_vec();
            let back = unview(g, lg, &view, &src_shape)?;
            let total = match grads.get(&src) {
                Some(prev) => g.add(*prev, back)?,
                None => back,
            };
            grads.insert(src, total);
        }
    }
    wrt.iter()
        .map(|v| {
            let shape = g.node_shape(v.node).to_vec();
            Ok(grads.get(&v.node).copied().unwrap_or_else(|| g.constant(0.0, &shape)))
        })
        .collect()
}

/// Nodes on some path from a target to `output`.
fn relevant_nodes(
    g: &GraphBuilder,
    order: &[NodeIndex],
    targets: &HashSet<NodeIndex>,
    output: NodeIndex,
) -> HashSet<NodeIndex> {
    let mut from_targets: HashSet<NodeIndex> = targets.clone();
    for &n in order {
        if from_targets.contains(&n) {
            continue;
        }
        if g.cx.graph.neighbors_directed(n, Direction::Incoming).any(|s| from_targets.contains(&s))
        {
            from_targets.insert(n);
        }
    }
    let mut to_output = HashSet::from([output]);
    for &n in order.iter().rev() {
        if g.cx.graph.neighbors_directed(n, Direction::Outgoing).any(|d| to_output.contains(&d)) {
            to_output.insert(n);
        }
    }
    from_targets.intersection(&to_output).copied().collect()
}

fn has_relevant_inputs(g: &GraphBuilder, node: NodeIndex, relevant: &HashSet<NodeIndex>) -> bool {
    g.cx.graph.neighbors_directed(node, Direction::Incoming).any(|s| relevant.contains(&s))
}

/// The gradient with respect to each input edge (in the edge's logical space), or `None`
/// where the op has no gradient or the input needs none (`needed`).
fn local_gradients(
    g: &mut GraphBuilder,
    node: NodeIndex,
    grad: Var,
    inputs: &[(NodeIndex, ShapeTracker)],
    needed: &[bool],
) -> Result<Vec<Option<Var>>> {
    let operator = g.cx.graph.node_weight(node).expect("node exists");
    let any = operator.as_any();
    let input = |i: usize| Var { node: inputs[i].0, view: inputs[i].1 };
    let own = Var { node, view: ticketlab_api::tensor::graph::tracker(g.node_shape(node)) };

    if any.is::<op::Add>() {
        Ok(vec![Some(grad), Some(grad)])
    } else if any.is::<op::Mul>() {
        // Only build the products that lead to a requested gradient.
        let (a, b) = (input(0), input(1));
        let da = if needed[0] { Some(g.mul(grad, b)?) } else { None };
        let db = if needed[1] { Some(g.mul(grad, a)?) } else { None };
        Ok(vec![da, db])
    } else if let Some(op::SumReduce(axis)) = any.downcast_ref::<op::SumReduce>() {
        let axis = *axis;
        let n = view_dims(&inputs[0].1)[axis];
        Ok(vec![Some(g.expand(grad, axis, n)?)])
    } else if let Some(op::MaxReduce(axis)) = any.downcast_ref::<op::MaxReduce>() {
        // Every element equal to the maximum receives the gradient (ties included).
        let axis = *axis;
        let x = input(0);
        let n = view_dims(&inputs[0].1)[axis];
        let max = g.expand(own, axis, n)?;
        let below = g.less_than(x, max)?;
        let one = g.constant(1.0, &x.shape());
        let is_max = g.sub(one, below)?;
        let ge = g.expand(grad, axis, n)?;
        Ok(vec![Some(g.mul(ge, is_max)?)])
    } else if any.is::<op::Contiguous>() {
        Ok(vec![Some(grad)])
    } else if any.is::<op::Log2>() {
        let r = g.recip(input(0));
        let gr = g.mul(grad, r)?;
        Ok(vec![Some(g.scale(gr, std::f32::consts::LOG2_E)?)])
    } else if any.is::<op::Exp2>() {
        let gy = g.mul(grad, own)?;
        Ok(vec![Some(g.scale(gy, std::f32::consts::LN_2)?)])
    } else if any.is::<op::Sin>() {
        let shifted = g.add_scalar(input(0), std::f32::consts::FRAC_PI_2)?;
        let cos = g.sin(shifted);
        Ok(vec![Some(g.mul(grad, cos)?)])
    } else if any.is::<op::Sqrt>() {
        let r = g.recip(own);
        let gr = g.mul(grad, r)?;
        Ok(vec![Some(g.scale(gr, 0.5)?)])
    } else if any.is::<op::Recip>() {
        let y2 = g.mul(own, own)?;
        let gy = g.mul(grad, y2)?;
        Ok(vec![Some(g.scale(gy, -1.0)?)])
    } else if any.is::<op::Mod>() {
        // a % b = a - b * trunc(a / b), piecewise: d/da = 1, d/db = -trunc(a / b) = (a % b - a) / b.
        let db = if needed[1] {
            let (a, b) = (input(0), input(1));
            let diff = g.sub(own, a)?;
            let quotient = g.div(diff, b)?;
            Some(g.mul(grad, quotient)?)
        } else {
            None
        };
        Ok(vec![Some(grad), db])
    } else if any.is::<op::LessThan>() {
        // Piecewise constant: no gradient flows through a comparison.
        Ok(vec![None, None])
    } else if any.is::<op::Function>() || any.is::<op::Constant>() {
        Ok(vec![])
    } else {
        Err(Error::shape(
            "autograd",
            format!("no gradient rule for op {operator:?}; differentiate before compiling"),
        ))
    }
}

/// Maps a gradient in an edge's logical space back to the source buffer's shape by inverting
/// the edge's view.
fn unview(
    g: &mut GraphBuilder,
    grad: Var,
    view: &ShapeTracker,
    src_shape: &[usize],
) -> Result<Var> {
    let logical = view_dims(view);
    let mut grad = grad;
    // 1. Broadcast axes: sum them out, last first so earlier axis numbers stay valid.
    let mut kept_axes: Vec<usize> = Vec::new();
    for axis in (0..logical.len()).rev() {
        if view.fake[view.indexes[axis]] {
            grad = g.sum_reduce(grad, axis)?;
        } else {
            kept_axes.push(axis);
        }
    }
    kept_axes.reverse();
    // 2. Slices and pads: physical index k of an axis is read at logical k + pad - slice start.
    for (pos, &axis) in kept_axes.iter().enumerate() {
        let p = view.indexes[axis];
        let dim = view.dims[p].to_usize().expect("concrete dims");
        let pad_before = view.padding[p].0.to_usize().expect("concrete pads");
        let slice_start = view.slices[p].0.to_usize().expect("concrete slices");
        let offset = pad_before as isize - slice_start as isize;
        let len = logical[axis];
        if offset == 0 && len == dim {
            continue;
        }
        let (start, lead) =
            if offset >= 0 { (offset as usize, 0) } else { (0, (-offset) as usize) };
        let available = len.saturating_sub(start);
        let take = available.min(dim.saturating_sub(lead));
        if start > 0 || take < len {
            grad = g.slice(grad, pos, start, start + take)?;
        }
        let trail = dim - lead - take;
        if lead > 0 || trail > 0 {
            grad = g.pad(grad, pos, lead, trail)?;
        }
    }
    // 3. Permutation: order the remaining axes by their physical position.
    let mut phys_order: Vec<(usize, usize)> =
        kept_axes.iter().enumerate().map(|(pos, &axis)| (view.indexes[axis], pos)).collect();
    phys_order.sort_unstable();
    let perm: Vec<usize> = phys_order.iter().map(|&(_, pos)| pos).collect();
    if perm.iter().enumerate().any(|(i, &p)| i != p) {
        grad = g.permute(grad, &perm)?;
    }
    // 4. Reshape: the view may factor the buffer differently from its producer.
    if grad.shape() != src_shape {
        grad = g.reshape(grad, src_shape)?;
    }
    Ok(grad)
}
