//! One-off computations on host data: outputs, evaluations, gradients and Hessian-vector
//! products of an architecture (what pruners score with).

use std::collections::BTreeMap;

use luminal::graph::NodeIndex;

use super::graph::{
    ForwardGraph, build_forward, check_masks, check_params, compile, feed_input, load_params,
    masked_values, materialize, retrieve, set_leaf, take, token_indices,
};
use super::loss::{EvalResult, LossKind, Objective, dense_targets, objective_node, score_outputs};
use crate::autograd;
use ticketlab_api::data::Split;
use ticketlab_api::error::catch_panic;
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::graph::Var;
use ticketlab_api::tensor::{Architecture, HostTensor, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result};

/// Outputs of the network on `x` with `params` (masked by `mask` when given), computed on
/// `device`.
pub fn forward(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    x: &HostTensor,
    device: Device,
) -> Result<HostTensor> {
    catch_panic("forward pass", || {
        let defs = arch.parameters();
        check_params(&defs, params)?;
        check_masks(&defs, mask)?;
        let indices = token_indices(x);
        let mut fw = build_forward(arch, &defs, mask, &x.shape, indices.is_some(), device)?;
        let out = materialize(&mut fw.g, fw.outputs);
        let shape = out.shape();
        retrieve(&mut fw.g, out.node);
        let mut ids = vec![out.node];
        compile(&mut fw, &mut ids)?;
        load_params(&mut fw, &[params], &[mask]);
        feed_input(&mut fw, x, indices)?;
        fw.execute();
        Ok(HostTensor::new(shape, take(&mut fw.g, ids[0])?))
    })
}

/// A loss graph with its gradients, ready to execute once.
struct GradGraph {
    fw: ForwardGraph,
    targets: Option<Var>,
    /// Leaves that replace the weights: the *effective* (masked) weights w.
    outputs: Vec<NodeIndex>,
}

fn grad_graph(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    split: &Split,
    objective: Objective,
    vector: Option<&NamedTensors>,
    device: Device,
) -> Result<GradGraph> {
    let defs = arch.parameters();
    check_params(&defs, params)?;
    check_masks(&defs, mask)?;
    // Differentiate with respect to the effective weights w = m * theta: feed w as the leaf.
    let indices = token_indices(&split.x);
    let mut fw = build_forward(arch, &defs, None, &split.x.shape, indices.is_some(), device)?;
    let (loss, targets) = objective_node(&mut fw.g, objective, fw.outputs)?;
    let leaves: Vec<Var> = fw.params.iter().map(|p| p.leaf).collect();
    let mut grads = autograd::backward(&mut fw.g, loss, &leaves)?;
    if let Some(v) = vector {
        // Hessian-vector product: the gradient of <stop(v), dL/dw>.
        let mut dot: Option<Var> = None;
        for (p, g) in fw.params.iter().zip(&grads) {
            let t = v.get(&p.name).ok_or_else(|| {
                Error::param(&p.name, "missing from the vector of the Hessian-vector product")
            })?;
            let leaf = fw.g.input(&format!("{} vector", p.name), &t.shape);
            set_leaf(&mut fw.g, leaf, t.data.clone());
            let prod = fw.g.mul(*g, leaf)?;
            let s = fw.g.sum_all(prod)?;
            dot = Some(match dot {
                Some(d) => fw.g.add(d, s)?,
                None => s,
            });
        }
        let dot = dot.ok_or_else(|| Error::Other("the architecture has no parameters".into()))?;
        grads = autograd::backward(&mut fw.g, dot, &leaves)?;
    }
    let mut outputs = Vec::new();
    for g in grads {
        let g = materialize(&mut fw.g, g);
        retrieve(&mut fw.g, g.node);
        outputs.push(g.node);
    }
    compile(&mut fw, &mut outputs)?;
    for p in &fw.params {
        set_leaf(&mut fw.g, p.leaf, masked_values(&p.name, params, mask));
    }
    feed_input(&mut fw, &split.x, indices)?;
    if let Some(y) = targets {
        let width = fw.outputs.shape()[1];
        set_leaf(&mut fw.g, y, dense_targets(&split.y, width)?);
    }
    Ok(GradGraph { fw, targets, outputs })
}

fn run_grad_graph(mut gg: GradGraph, params: &NamedTensors) -> Result<NamedTensors> {
    let _ = gg.targets;
    gg.fw.execute();
    let mut out = BTreeMap::new();
    for (p, node) in gg.fw.params.iter().zip(gg.outputs.clone()) {
        let data = take(&mut gg.fw.g, node)?;
        out.insert(p.name.clone(), HostTensor::new(params[&p.name].shape.clone(), data));
    }
    Ok(out)
}

/// Gradients of `objective` on `split` with respect to every parameter: dL/dw of the
/// effective weights w = m * theta (multiply by theta for SNIP's dL/dm).
pub fn gradients(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    split: &Split,
    objective: Objective,
    device: Device,
) -> Result<NamedTensors> {
    catch_panic("gradient computation", || {
        let gg = grad_graph(arch, params, mask, split, objective, None, device)?;
        run_grad_graph(gg, params)
    })
}

/// The Hessian of `objective` (with respect to the effective weights) times `v`, by double
/// backward: the gradient of `<stop(v), dL/dw>`.
pub fn hessian_gradient_product(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    split: &Split,
    objective: Objective,
    v: &NamedTensors,
    device: Device,
) -> Result<NamedTensors> {
    catch_panic("Hessian-vector product", || {
        let gg = grad_graph(arch, params, mask, split, objective, Some(v), device)?;
        run_grad_graph(gg, params)
    })
}

/// Loss and accuracy of the network on a split.
pub fn evaluate(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    split: &Split,
    loss: LossKind,
    device: Device,
) -> Result<EvalResult> {
    let out = forward(arch, params, mask, &split.x, device)?;
    score_outputs(&out.data, out.shape[1], &split.y, loss)
}
