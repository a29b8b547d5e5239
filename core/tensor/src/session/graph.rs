//! Forward graphs over parameter leaves: building one for an architecture, feeding weights,
//! masks and inputs, compiling it for a device, and reading outputs back, for one arm or many.

use std::collections::BTreeMap;

use luminal::graph::NodeIndex;
use luminal::tensor::Tensor;

use super::executor::Schedule;
use crate::kernels;
use crate::narrow::narrow;
use crate::reassociate::reassociate;
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::graph::{GraphBuilder, Var};
use ticketlab_api::tensor::{Architecture, HostTensor, MaskSet, NamedTensors, ParamDef};
use ticketlab_api::{Error, Result};

/// A parameter leaf: its node and, when masked, the mask leaf.
pub(super) struct ParamLeaf {
    pub(super) name: String,
    pub(super) leaf: Var,
    pub(super) mask: Option<Var>,
}

/// A forward graph over parameter leaves and an input leaf.
pub(super) struct ForwardGraph {
    pub(super) g: GraphBuilder,
    pub(super) params: Vec<ParamLeaf>,
    pub(super) x: Var,
    /// For one-hot token inputs, the leaf of their indices (see [`kernels::TokenPass`]).
    pub(super) tokens: Option<Var>,
    pub(super) outputs: Var,
    /// How many arms the compiled graph runs (see [`arm_graph`]); 1 for a plain graph.
    pub(super) arms: usize,
    /// Where it runs once compiled.
    pub(super) device: Device,
    /// The order it runs in, made when it first runs (after it is compiled).
    schedule: Option<Schedule>,
}

impl ForwardGraph {
    /// Runs the compiled graph.
    pub(super) fn execute(&mut self) {
        let schedule = self.schedule.get_or_insert_with(|| Schedule::of(&self.g.cx));
        schedule.run(&mut self.g.cx);
    }
}

/// The token indices of one-hot inputs `[n, n_ctx, vocab]` (exactly one 1.0 per row, zeros
/// elsewhere), in example then context order; `None` for any other input.
pub(super) fn token_indices(x: &HostTensor) -> Option<Vec<f32>> {
    let [_, _, vocab] = x.shape[..] else { return None };
    if vocab == 0 || vocab > 1 << 24 {
        return None;
    }
    x.data
        .chunks_exact(vocab)
        .map(|row| {
            let hot = row.iter().position(|&v| v == 1.0)?;
            let rest_zero = row.iter().enumerate().all(|(j, &v)| j == hot || v == 0.0);
            rest_zero.then_some(hot as f32)
        })
        .collect()
}

pub(super) fn build_forward(
    arch: &dyn Architecture,
    defs: &[ParamDef],
    masked: Option<&MaskSet>,
    x_shape: &[usize],
    tokens: bool,
    device: Device,
) -> Result<ForwardGraph> {
    let mut g = GraphBuilder::new();
    let x = g.input("x", x_shape);
    let tokens = (tokens && x_shape.len() == 3)
        .then(|| g.input("x token indices", &[x_shape[0] * x_shape[1]]));
    let mut params = Vec::new();
    let mut effective = BTreeMap::new();
    for d in defs {
        let leaf = g.input(&d.name, &d.shape);
        let mask = masked
            .and_then(|m| m.get(&d.name))
            .map(|_| g.input(&format!("{} mask", d.name), &d.shape));
        let w = match mask {
            Some(m) => g.mul(leaf, m)?,
            None => leaf,
        };
        effective.insert(d.name.clone(), w);
        params.push(ParamLeaf { name: d.name.clone(), leaf, mask });
    }
    let outputs = arch.forward(&mut g, &effective, x)?;
    // Before autograd, so the gradients come from the cheaper algebra too.
    let mut held = [outputs.node];
    narrow(&mut g, &held)?;
    reassociate(&mut g, &mut held)?;
    let outputs = Var { node: held[0], view: outputs.view };
    let expected_batch = x_shape[0];
    let out_shape = outputs.shape();
    if out_shape.len() != 2 || out_shape[0] != expected_batch {
        return Err(Error::shape(
            "architecture output",
            format!("expected [batch={expected_batch}, outputs], got {out_shape:?}"),
        ));
    }
    Ok(ForwardGraph { g, params, x, tokens, outputs, arms: 1, device, schedule: None })
}

pub(super) fn set_leaf(g: &mut GraphBuilder, leaf: Var, data: Vec<f32>) {
    g.cx.set_tensor(leaf.node, 0, Tensor::new(data));
    g.cx.no_delete.insert(leaf.node);
}

pub(super) fn retrieve(g: &mut GraphBuilder, node: NodeIndex) {
    g.cx.no_delete.insert(node);
    g.cx.to_retrieve.insert(node);
}

/// Takes an output's buffer out of the graph (so the next execution recomputes it).
pub(super) fn take(g: &mut GraphBuilder, node: NodeIndex) -> Result<Vec<f32>> {
    let t =
        g.cx.get_tensor(node, 0)
            .ok_or_else(|| Error::Internal("graph output was not computed".into()))?;
    host_f32(t)
}

/// Sets an armed leaf: one value per arm (a plain value in a graph of one arm).
pub(super) fn set_arms(fw: &mut ForwardGraph, leaf: Var, mut values: Vec<Vec<f32>>) {
    if fw.arms == 1 {
        return set_leaf(&mut fw.g, leaf, values.swap_remove(0));
    }
    let arms = values.into_iter().map(Tensor::new).collect();
    fw.g.cx.set_tensor(leaf.node, 0, Tensor::new(kernels::PerArm(arms)));
    fw.g.cx.no_delete.insert(leaf.node);
}

/// Takes each arm's value of an output out of the graph. An output that depends on no armed
/// leaf (the zero gradient of an unused weight) is the same for every arm.
pub(super) fn take_arms(fw: &mut ForwardGraph, node: NodeIndex) -> Result<Vec<Vec<f32>>> {
    let mut t =
        fw.g.cx
            .get_tensor(node, 0)
            .ok_or_else(|| Error::Internal("graph output was not computed".into()))?;
    if let Some(arms) = t.data.as_any_mut().downcast_mut::<kernels::PerArm>() {
        return std::mem::take(&mut arms.0).into_iter().map(host_f32).collect();
    }
    Ok(vec![host_f32(t)?; fw.arms])
}

pub(super) fn host_f32(mut t: Tensor) -> Result<Vec<f32>> {
    t.data
        .as_any_mut()
        .downcast_mut::<Vec<f32>>()
        .map(std::mem::take)
        .ok_or_else(|| Error::Internal("graph output is not a host f32 buffer".into()))
}

/// Makes a compiled graph run `arms` arms ([`kernels::arm`]): its weight and mask leaves, and
/// `extra` (a per-arm input), hold one value per arm. A graph of one arm stays as it is.
pub(super) fn arm_graph(
    fw: &mut ForwardGraph,
    ids: &mut [NodeIndex],
    arms: usize,
    extra: Option<NodeIndex>,
) {
    fw.arms = arms;
    if arms > 1 {
        let leaves = fw.params.iter().flat_map(|p| [Some(p.leaf.node), p.mask.map(|m| m.node)]);
        kernels::arm(&mut fw.g.cx, ids, leaves.flatten().chain(extra).collect(), arms);
    }
}

/// Makes `v` a plain buffer of its own shape (gradients may come out as views).
pub(super) fn materialize(g: &mut GraphBuilder, v: Var) -> Var {
    g.contiguous_if_needed(v)
}

pub(super) fn check_params(defs: &[ParamDef], params: &NamedTensors) -> Result<()> {
    for d in defs {
        let t = params
            .get(&d.name)
            .ok_or_else(|| Error::param(&d.name, "missing from the model's parameters"))?;
        if t.shape != d.shape {
            return Err(Error::shape(
                &d.name,
                format!(
                    "parameter has shape {:?}, the architecture expects {:?}",
                    t.shape, d.shape
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_masks(defs: &[ParamDef], mask: Option<&MaskSet>) -> Result<()> {
    for (name, m) in mask.into_iter().flatten() {
        let d = defs.iter().find(|d| &d.name == name).ok_or_else(|| {
            Error::param(name, "mask names a parameter the architecture does not have")
        })?;
        if m.shape != d.shape {
            return Err(Error::shape(
                name,
                format!("mask has shape {:?}, parameter has {:?}", m.shape, d.shape),
            ));
        }
    }
    Ok(())
}

pub(super) fn masked_values(name: &str, params: &NamedTensors, mask: Option<&MaskSet>) -> Vec<f32> {
    let p = &params[name];
    match mask.and_then(|m| m.get(name)) {
        Some(m) => p.data.iter().zip(&m.data).map(|(w, k)| w * k).collect(),
        None => p.data.clone(),
    }
}

/// Loads each arm's weights (and masks) into a forward graph's leaves.
pub(super) fn load_params(
    fw: &mut ForwardGraph,
    params: &[&NamedTensors],
    masks: &[Option<&MaskSet>],
) {
    for i in 0..fw.params.len() {
        let (name, leaf, mask_leaf) = (&fw.params[i].name, fw.params[i].leaf, fw.params[i].mask);
        let weights = params.iter().map(|p| p[name].data.clone()).collect();
        let mask: Option<Vec<Vec<f32>>> =
            masks.iter().map(|m| m.and_then(|m| m.get(name)).map(|m| m.data.clone())).collect();
        set_arms(fw, leaf, weights);
        if let (Some(leaf), Some(mask)) = (mask_leaf, mask) {
            set_arms(fw, leaf, mask);
        }
    }
}

/// Sets the input leaf and, for a graph compiled for token inputs, the token indices
/// (`indices`, from [`token_indices`] of `x`, computed once by the caller).
pub(super) fn feed_input(
    fw: &mut ForwardGraph,
    x: &HostTensor,
    indices: Option<Vec<f32>>,
) -> Result<()> {
    if let Some(leaf) = fw.tokens {
        let indices = indices.ok_or_else(|| {
            Error::shape(
                "inputs",
                "the graph was compiled for one-hot token inputs, but these inputs are not one-hot",
            )
        })?;
        set_leaf(&mut fw.g, leaf, indices);
    }
    set_leaf(&mut fw.g, fw.x, x.data.clone());
    Ok(())
}

/// Reorders the whole graph's matrix chains (gradient graphs have their own), then runs the
/// kernel passes of the graph's device.
pub(super) fn compile(fw: &mut ForwardGraph, outputs: &mut [NodeIndex]) -> Result<()> {
    reassociate(&mut fw.g, outputs)?;
    let tokens = fw.tokens.map(|indices| {
        let shape = fw.x.shape();
        kernels::TokenLeaves {
            one_hot: fw.x.node,
            indices: indices.node,
            n: shape[0],
            n_ctx: shape[1],
            vocab: shape[2],
        }
    });
    kernels::compile(&mut fw.g.cx, outputs, tokens, fw.device);
    Ok(())
}

/// The mutable buffer of `arm`'s value of a leaf.
pub(super) fn leaf_buffer(g: &mut GraphBuilder, leaf: Var, arm: usize) -> Result<&mut Vec<f32>> {
    let t = g.cx.tensors.get_mut(&(leaf.node, 0));
    let t = match t {
        Some(t) if t.data.as_any().is::<kernels::PerArm>() => {
            t.data.as_any_mut().downcast_mut::<kernels::PerArm>().and_then(|a| a.0.get_mut(arm))
        }
        other => other.filter(|_| arm == 0),
    };
    t.and_then(|t| t.data.as_any_mut().downcast_mut::<Vec<f32>>())
        .ok_or_else(|| Error::Internal("a weight buffer is missing from the graph".into()))
}

/// `arm`'s value of a leaf.
pub(super) fn leaf_value(g: &GraphBuilder, leaf: Var, arm: usize) -> Option<&Vec<f32>> {
    let t = g.cx.get_tensor_ref(leaf.node, 0)?;
    let t = match t.data.as_any().downcast_ref::<kernels::PerArm>() {
        Some(arms) => arms.0.get(arm)?,
        None if arm == 0 => t,
        None => return None,
    };
    t.data.as_any().downcast_ref::<Vec<f32>>()
}
