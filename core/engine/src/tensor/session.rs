//! Compiled training sessions and one-off evaluations on host data.
//!
//! Every graph here is built once with [`GraphBuilder`], differentiated with
//! [`autograd::backward`], compiled with our [`kernels`] and then executed. Weights, masks and
//! inputs are graph leaves whose buffers persist across executions (`no_delete`); outputs are
//! taken out of the graph after each execution so the next one recomputes them.
//!
//! Losses reported by evaluations are computed on the host in f64 from the graph's f32 outputs
//! (the reference code computes its cross-entropy in float64). The training loss is the
//! max-subtracted f32 log-softmax in the graph, stable for logits of any magnitude, or with
//! [`LossPrecision::F64`] the loss and its gradient with respect to the outputs are computed on
//! the host in f64 and fed to the backward graph, as the reference code does. The f32 graph
//! does not lose the gradient of confident predictions: where `p(label)` rounds to 1, the
//! max-subtraction routes the other classes' gradients back to the label (both are tested
//! against an f64 reference in that regime).

use std::collections::{BTreeMap, HashMap};

use luminal::graph::NodeIndex;
use luminal::tensor::Tensor;

use super::autograd;
use super::graph::{GraphBuilder, Var};
use super::kernels;
use super::narrow::narrow;
use super::optim::{OptimizerConfig, OptimizerState};
use super::reassociate::reassociate;
use crate::data::{Split, Targets};
use crate::error::catch_panic;
use crate::tensor::{Architecture, HostTensor, MaskSet, NamedTensors, ParamDef};
use crate::{Error, Result};

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

/// What one training step does: the loss, its precision, the optimizer and the batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSpec {
    /// The training loss.
    pub loss: LossKind,
    /// Where the loss is computed.
    pub precision: LossPrecision,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Examples per step.
    pub batch_size: usize,
}

impl StepSpec {
    /// The paper's recipe at `batch_size`: cross-entropy in f32, [`OptimizerConfig::paper_adamw`].
    pub fn paper(batch_size: usize) -> Self {
        Self {
            loss: LossKind::CrossEntropy,
            precision: LossPrecision::F32,
            optimizer: OptimizerConfig::paper_adamw(),
            batch_size,
        }
    }
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

// ---- graph plumbing --------------------------------------------------------------------

/// A parameter leaf: its node and, when masked, the mask leaf.
struct ParamLeaf {
    name: String,
    leaf: Var,
    mask: Option<Var>,
}

/// A forward graph over parameter leaves and an input leaf.
struct ForwardGraph {
    g: GraphBuilder,
    params: Vec<ParamLeaf>,
    x: Var,
    /// For one-hot token inputs, the leaf of their indices (see [`kernels::TokenPass`]).
    tokens: Option<Var>,
    outputs: Var,
    /// How many arms the compiled graph runs (see [`arm_graph`]); 1 for a plain graph.
    arms: usize,
}

/// The token indices of one-hot inputs `[n, n_ctx, vocab]` (exactly one 1.0 per row, zeros
/// elsewhere), in example then context order; `None` for any other input.
fn token_indices(x: &HostTensor) -> Option<Vec<f32>> {
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

fn build_forward(
    arch: &dyn Architecture,
    defs: &[ParamDef],
    masked: Option<&MaskSet>,
    x_shape: &[usize],
    tokens: bool,
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
    Ok(ForwardGraph { g, params, x, tokens, outputs, arms: 1 })
}

fn set_leaf(g: &mut GraphBuilder, leaf: Var, data: Vec<f32>) {
    g.cx.set_tensor(leaf.node, 0, Tensor::new(data));
    g.cx.no_delete.insert(leaf.node);
}

fn retrieve(g: &mut GraphBuilder, node: NodeIndex) {
    g.cx.no_delete.insert(node);
    g.cx.to_retrieve.insert(node);
}

/// Takes an output's buffer out of the graph (so the next execution recomputes it).
fn take(g: &mut GraphBuilder, node: NodeIndex) -> Result<Vec<f32>> {
    let t =
        g.cx.get_tensor(node, 0)
            .ok_or_else(|| Error::Other("graph output was not computed".into()))?;
    host_f32(t)
}

/// Sets an armed leaf: one value per arm (a plain value in a graph of one arm).
fn set_arms(fw: &mut ForwardGraph, leaf: Var, mut values: Vec<Vec<f32>>) {
    if fw.arms == 1 {
        return set_leaf(&mut fw.g, leaf, values.swap_remove(0));
    }
    let arms = values.into_iter().map(Tensor::new).collect();
    fw.g.cx.set_tensor(leaf.node, 0, Tensor::new(kernels::PerArm(arms)));
    fw.g.cx.no_delete.insert(leaf.node);
}

/// Takes each arm's value of an output out of the graph. An output that depends on no armed
/// leaf (the zero gradient of an unused weight) is the same for every arm.
fn take_arms(fw: &mut ForwardGraph, node: NodeIndex) -> Result<Vec<Vec<f32>>> {
    let mut t =
        fw.g.cx
            .get_tensor(node, 0)
            .ok_or_else(|| Error::Other("graph output was not computed".into()))?;
    if let Some(arms) = t.data.as_any_mut().downcast_mut::<kernels::PerArm>() {
        return std::mem::take(&mut arms.0).into_iter().map(host_f32).collect();
    }
    Ok(vec![host_f32(t)?; fw.arms])
}

fn host_f32(mut t: Tensor) -> Result<Vec<f32>> {
    t.data
        .as_any_mut()
        .downcast_mut::<Vec<f32>>()
        .map(std::mem::take)
        .ok_or_else(|| Error::Other("graph output is not a host f32 buffer".into()))
}

/// Makes a compiled graph run `arms` arms ([`kernels::arm`]): its weight and mask leaves, and
/// `extra` (a per-arm input), hold one value per arm. A graph of one arm stays as it is.
fn arm_graph(fw: &mut ForwardGraph, ids: &mut [NodeIndex], arms: usize, extra: Option<NodeIndex>) {
    fw.arms = arms;
    if arms > 1 {
        let leaves = fw.params.iter().flat_map(|p| [Some(p.leaf.node), p.mask.map(|m| m.node)]);
        kernels::arm(&mut fw.g.cx, ids, leaves.flatten().chain(extra).collect(), arms);
    }
}

/// Makes `v` a plain buffer of its own shape (gradients may come out as views).
fn materialize(g: &mut GraphBuilder, v: Var) -> Var {
    g.contiguous_if_needed(v)
}

/// The loss graph node for `objective` on `outputs` against a targets leaf.
fn objective_node(
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
fn dense_targets(y: &Targets, width: usize) -> Result<Vec<f32>> {
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

fn check_params(defs: &[ParamDef], params: &NamedTensors) -> Result<()> {
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

fn check_masks(defs: &[ParamDef], mask: Option<&MaskSet>) -> Result<()> {
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

fn masked_values(name: &str, params: &NamedTensors, mask: Option<&MaskSet>) -> Vec<f32> {
    let p = &params[name];
    match mask.and_then(|m| m.get(name)) {
        Some(m) => p.data.iter().zip(&m.data).map(|(w, k)| w * k).collect(),
        None => p.data.clone(),
    }
}

/// Loads each arm's weights (and masks) into a forward graph's leaves.
fn load_params(fw: &mut ForwardGraph, params: &[&NamedTensors], masks: &[Option<&MaskSet>]) {
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
fn feed_input(fw: &mut ForwardGraph, x: &HostTensor, indices: Option<Vec<f32>>) -> Result<()> {
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
/// kernel passes.
fn compile(fw: &mut ForwardGraph, outputs: &mut [NodeIndex]) -> Result<()> {
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
    kernels::compile(&mut fw.g.cx, outputs, tokens);
    Ok(())
}

// ---- one-off evaluations ---------------------------------------------------------------

/// Outputs of the network on `x` with `params` (masked by `mask` when given).
pub fn forward(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    x: &HostTensor,
) -> Result<HostTensor> {
    catch_panic("forward pass", || {
        let defs = arch.parameters();
        check_params(&defs, params)?;
        check_masks(&defs, mask)?;
        let indices = token_indices(x);
        let mut fw = build_forward(arch, &defs, mask, &x.shape, indices.is_some())?;
        let out = materialize(&mut fw.g, fw.outputs);
        let shape = out.shape();
        retrieve(&mut fw.g, out.node);
        let mut ids = vec![out.node];
        compile(&mut fw, &mut ids)?;
        load_params(&mut fw, &[params], &[mask]);
        feed_input(&mut fw, x, indices)?;
        fw.g.cx.execute();
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
) -> Result<GradGraph> {
    let defs = arch.parameters();
    check_params(&defs, params)?;
    check_masks(&defs, mask)?;
    // Differentiate with respect to the effective weights w = m * theta: feed w as the leaf.
    let indices = token_indices(&split.x);
    let mut fw = build_forward(arch, &defs, None, &split.x.shape, indices.is_some())?;
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
    gg.fw.g.cx.execute();
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
) -> Result<NamedTensors> {
    catch_panic("gradient computation", || {
        let gg = grad_graph(arch, params, mask, split, objective, None)?;
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
) -> Result<NamedTensors> {
    catch_panic("Hessian-vector product", || {
        let gg = grad_graph(arch, params, mask, split, objective, Some(v))?;
        run_grad_graph(gg, params)
    })
}

/// The mean loss of `outputs` (`[n, width]`) against `y`, in f64, and with `grad` its gradient
/// with respect to the outputs (written as f32).
fn host_loss(
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
                    return Err(Error::Other(
                        "cross-entropy needs class labels; use `loss: mse` for regression".into(),
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
fn score_outputs(outputs: &[f32], width: usize, y: &Targets, loss: LossKind) -> Result<EvalResult> {
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

/// Loss and accuracy of the network on a split.
pub fn evaluate(
    arch: &dyn Architecture,
    params: &NamedTensors,
    mask: Option<&MaskSet>,
    split: &Split,
    loss: LossKind,
) -> Result<EvalResult> {
    let out = forward(arch, params, mask, &split.x)?;
    score_outputs(&out.data, out.shape[1], &split.y, loss)
}

// ---- training sessions -----------------------------------------------------------------

/// A compiled forward graph kept for repeated evaluations at one batch size.
struct EvalGraph {
    fw: ForwardGraph,
    output: NodeIndex,
    width: usize,
}

/// What one arm of a [`TrainingSession`] starts from and trains with.
#[derive(Debug, Clone)]
pub struct ArmInit {
    /// Starting weights.
    pub params: NamedTensors,
    /// The mask (every arm of a session masks the same parameters).
    pub mask: Option<MaskSet>,
    /// The optimizer and its hyperparameters (each arm has its own).
    pub optimizer: OptimizerConfig,
}

/// One arm's own state in a session.
struct Arm {
    mask: Option<MaskSet>,
    optimizer: OptimizerState,
    /// The largest global L2 norm of a step's gradient (`None`: no clipping).
    grad_clip: Option<f64>,
}

/// One training step compiled once and executed many times, for one network or for several
/// *arms* of the same shapes at once.
///
/// The weights live in the step graph's leaf buffers; the optimizer updates them in place on
/// the host between executions (a fused loop: cheaper on CPU than ~15 extra graph nodes per
/// parameter), and masked entries are kept at exactly 0.
///
/// With several arms, the graph compiled for one arm runs each of its kernels once per arm
/// ([`kernels::ArmPass`]): every arm has its own weights, mask, optimizer state, learning rate
/// and gradient clipping, shares the batch, and gets exactly the numbers a session of its own
/// would give.
pub struct TrainingSession<'a> {
    arch: &'a dyn Architecture,
    defs: Vec<ParamDef>,
    arms: Vec<Arm>,
    spec: StepSpec,
    step_graph: ForwardGraph,
    /// The leaf the step graph reads: one-hot targets (f32 loss) or the loss gradient with
    /// respect to the outputs (f64 loss).
    targets: Option<Var>,
    loss_node: NodeIndex,
    grad_nodes: Vec<NodeIndex>,
    /// Compiled forward graphs by split size and whether the inputs are tokens.
    eval_graphs: HashMap<(usize, bool), EvalGraph>,
    /// The current batch, kept for the extra forward pass of an f64 loss.
    batch: Option<Split>,
}

impl<'a> TrainingSession<'a> {
    /// Compiles a session that trains one network as `spec` says, starting from `params`.
    pub fn new(
        arch: &'a dyn Architecture,
        params: NamedTensors,
        mask: Option<MaskSet>,
        spec: &StepSpec,
        example: &Split,
    ) -> Result<Self> {
        let arm = ArmInit { params, mask, optimizer: spec.optimizer };
        Self::with_arms(arch, vec![arm], spec, example)
    }

    /// Compiles a session that trains `arms` at once, each as `spec` says but with its own
    /// optimizer, on the same batches.
    pub fn with_arms(
        arch: &'a dyn Architecture,
        arms: Vec<ArmInit>,
        spec: &StepSpec,
        example: &Split,
    ) -> Result<Self> {
        catch_panic("compiling the training step", || {
            let defs = arch.parameters();
            let first =
                arms.first().ok_or_else(|| Error::Other("a session needs an arm".into()))?;
            let masked: Vec<&String> = first.mask.iter().flatten().map(|(name, _)| name).collect();
            for arm in &arms {
                check_params(&defs, &arm.params)?;
                check_masks(&defs, arm.mask.as_ref())?;
                if arm.mask.iter().flatten().map(|(name, _)| name).ne(masked.iter().copied()) {
                    return Err(Error::Other(
                        "the arms of a session must mask the same parameters".into(),
                    ));
                }
            }
            let mut x_shape = example.x.shape.clone();
            x_shape[0] = spec.batch_size;
            let tokens = token_indices(&example.x).is_some();
            let mut fw = build_forward(arch, &defs, first.mask.as_ref(), &x_shape, tokens)?;
            let (loss_var, targets) = match spec.precision {
                LossPrecision::F32 => objective_node(&mut fw.g, spec.loss.into(), fw.outputs)?,
                LossPrecision::F64 => {
                    // sum(outputs * G) has gradient G with respect to the outputs, so backward
                    // from it propagates the host-computed dL/doutputs.
                    let g = fw.g.input("loss gradient", &fw.outputs.shape());
                    let weighted = fw.g.mul(fw.outputs, g)?;
                    (fw.g.sum_all(weighted)?, Some(g))
                }
            };
            let leaves: Vec<Var> = fw.params.iter().map(|p| p.leaf).collect();
            let grads = autograd::backward(&mut fw.g, loss_var, &leaves)?;
            let mut ids = vec![loss_var.node];
            for g in grads {
                let g = materialize(&mut fw.g, g);
                ids.push(g.node);
            }
            for &id in &ids {
                retrieve(&mut fw.g, id);
            }
            compile(&mut fw, &mut ids)?;
            // An f64 loss feeds each arm its own gradient with respect to its outputs.
            let host_gradient = targets.filter(|_| spec.precision == LossPrecision::F64);
            arm_graph(&mut fw, &mut ids, arms.len(), host_gradient.map(|v| v.node));
            let mut loaded = Vec::with_capacity(arms.len());
            let mut states = Vec::with_capacity(arms.len());
            for arm in arms {
                // Masked weights start (and stay) at exactly 0.
                let mut params = arm.params;
                if let Some(m) = &arm.mask {
                    crate::pruning::apply_mask(&mut params, m);
                }
                loaded.push(params);
                states.push(Arm {
                    mask: arm.mask,
                    optimizer: OptimizerState::new(arm.optimizer, &defs),
                    grad_clip: None,
                });
            }
            let masks: Vec<Option<&MaskSet>> = states.iter().map(|a| a.mask.as_ref()).collect();
            load_params(&mut fw, &loaded.iter().collect::<Vec<_>>(), &masks);
            Ok(Self {
                arch,
                defs,
                arms: states,
                spec: *spec,
                step_graph: fw,
                targets,
                loss_node: ids[0],
                grad_nodes: ids[1..].to_vec(),
                eval_graphs: HashMap::new(),
                batch: None,
            })
        })
    }

    /// How many arms the session trains.
    pub fn arms(&self) -> usize {
        self.arms.len()
    }

    /// Sets the examples the next steps train on (once for full-batch training); every arm
    /// trains on them.
    pub fn set_batch(&mut self, batch: &Split) -> Result<()> {
        if batch.len() != self.spec.batch_size {
            return Err(Error::shape(
                "training batch",
                format!(
                    "{} examples, the session was compiled for {}",
                    batch.len(),
                    self.spec.batch_size
                ),
            ));
        }
        let width = self.step_graph.outputs.shape()[1];
        let targets = dense_targets(&batch.y, width)?;
        feed_input(&mut self.step_graph, &batch.x, token_indices(&batch.x))?;
        match (self.spec.precision, self.targets) {
            (LossPrecision::F32, Some(y)) => set_leaf(&mut self.step_graph.g, y, targets),
            (LossPrecision::F64, _) => self.batch = Some(batch.clone()),
            _ => {}
        }
        Ok(())
    }

    /// One optimizer step of a session of one arm on the current batch; returns the batch loss
    /// before the update, and an error when it is not finite.
    pub fn step(&mut self) -> Result<f64> {
        let loss = self.step_arms()?[0];
        if !loss.is_finite() {
            return Err(Error::loss_diverged(self.steps(), loss));
        }
        Ok(loss)
    }

    /// One optimizer step of every arm on the current batch; returns each arm's batch loss
    /// before the update. An arm whose loss is not finite has diverged; the others are not
    /// affected by it, so the caller decides what to do with it.
    pub fn step_arms(&mut self) -> Result<Vec<f64>> {
        catch_panic("training step", || {
            let (losses, grads) = self.loss_and_gradients()?;
            for (arm_index, (arm, mut grads)) in self.arms.iter_mut().zip(grads).enumerate() {
                if let Some(max_norm) = arm.grad_clip {
                    clip_grad_norm(&mut grads, max_norm);
                }
                for (index, (p, grad)) in self.step_graph.params.iter().zip(&grads).enumerate() {
                    let weights = leaf_buffer(&mut self.step_graph.g, p.leaf, arm_index)?;
                    let mask =
                        arm.mask.as_ref().and_then(|m| m.get(&p.name)).map(|m| m.data.as_slice());
                    arm.optimizer.update(index, weights, grad, mask);
                }
                arm.optimizer.finish_step();
            }
            Ok(losses)
        })
    }

    /// The loss on the current batch and its gradient with respect to every parameter (of the
    /// effective weights `m * theta`), without updating anything, for a session of one arm:
    /// for trainers that update something else than the weights, such as edge-popup's scores.
    pub fn gradients(&mut self) -> Result<(f64, NamedTensors)> {
        catch_panic("gradient computation", || {
            let (losses, grads) = self.loss_and_gradients()?;
            let grads = grads.into_iter().next().expect("a session has an arm");
            let out = self
                .defs
                .iter()
                .zip(grads)
                .map(|(d, g)| (d.name.clone(), HostTensor::new(d.shape.clone(), g)))
                .collect();
            Ok((losses[0], out))
        })
    }

    /// Replaces the weights of a session of one arm (its mask, if any, still applies),
    /// keeping the optimizer state and step count.
    pub fn set_params(&mut self, params: &NamedTensors) -> Result<()> {
        check_params(&self.defs, params)?;
        let mut params = params.clone();
        let mask = self.arms[0].mask.clone();
        if let Some(m) = &mask {
            crate::pruning::apply_mask(&mut params, m);
        }
        load_params(&mut self.step_graph, &[&params], &[mask.as_ref()]);
        Ok(())
    }

    /// Runs the step graph: each arm's batch loss and each of its parameters' gradients, in
    /// parameter order.
    #[allow(clippy::type_complexity)]
    fn loss_and_gradients(&mut self) -> Result<(Vec<f64>, Vec<Vec<Vec<f32>>>)> {
        let host_losses = match self.spec.precision {
            LossPrecision::F32 => None,
            LossPrecision::F64 => Some(self.feed_loss_gradient()?),
        };
        let fw = &mut self.step_graph;
        fw.g.cx.execute();
        let graph_losses = take_arms(fw, self.loss_node)?;
        let mut grads: Vec<Vec<Vec<f32>>> =
            (0..fw.arms).map(|_| Vec::with_capacity(self.grad_nodes.len())).collect();
        for &node in &self.grad_nodes {
            for (arm, grad) in grads.iter_mut().zip(take_arms(fw, node)?) {
                arm.push(grad);
            }
        }
        let losses =
            host_losses.unwrap_or_else(|| graph_losses.iter().map(|l| f64::from(l[0])).collect());
        Ok((losses, grads))
    }

    /// Runs the forward pass on the current batch, computes each arm's loss and its gradient
    /// with respect to the outputs in f64, and feeds the gradients to the step graph.
    fn feed_loss_gradient(&mut self) -> Result<Vec<f64>> {
        let batch = self.batch.take().ok_or_else(|| {
            Error::Other("no training batch was set: call `set_batch` before `step`".into())
        })?;
        let result = self.outputs(&batch).and_then(|(outputs, width)| {
            let mut losses = Vec::with_capacity(outputs.len());
            let mut grads = Vec::with_capacity(outputs.len());
            for out in outputs {
                let mut grad = vec![0.0f32; out.len()];
                losses.push(host_loss(&out, width, &batch.y, self.spec.loss, Some(&mut grad))?);
                grads.push(grad);
            }
            let leaf = self.targets.expect("an f64 loss has a gradient leaf");
            set_arms(&mut self.step_graph, leaf, grads);
            Ok(losses)
        });
        self.batch = Some(batch);
        result
    }

    /// Sets the learning rate of `arm`'s next steps (for schedules).
    pub fn set_lr(&mut self, arm: usize, lr: f64) {
        self.arms[arm].optimizer.set_lr(lr);
    }

    /// Clips `arm`'s gradient to a global L2 norm of at most `max_norm` at every step before
    /// the update (`None`: no clipping), as PyTorch's `clip_grad_norm_` does.
    pub fn set_grad_clip(&mut self, arm: usize, max_norm: Option<f64>) {
        self.arms[arm].grad_clip = max_norm;
    }

    /// Optimizer steps taken (by every arm alike).
    pub fn steps(&self) -> u64 {
        self.arms[0].optimizer.steps()
    }

    /// Loss and accuracy on a split with the current weights, for a session of one arm.
    pub fn evaluate(&mut self, split: &Split) -> Result<EvalResult> {
        Ok(self.evaluate_arms(split)?[0])
    }

    /// Each arm's loss and accuracy on a split with its current weights.
    pub fn evaluate_arms(&mut self, split: &Split) -> Result<Vec<EvalResult>> {
        catch_panic("evaluation", || {
            let (outputs, width) = self.outputs(split)?;
            outputs.iter().map(|out| score_outputs(out, width, &split.y, self.spec.loss)).collect()
        })
    }

    /// Each arm's outputs on `split` with its current weights, and their width (one compiled
    /// forward graph per split size, reused).
    fn outputs(&mut self, split: &Split) -> Result<(Vec<Vec<f32>>, usize)> {
        let params =
            (0..self.arms.len()).map(|arm| self.arm_params(arm)).collect::<Result<Vec<_>>>()?;
        let indices = token_indices(&split.x);
        let key = (split.len(), indices.is_some());
        if !self.eval_graphs.contains_key(&key) {
            let mut fw = build_forward(self.arch, &self.defs, None, &split.x.shape, key.1)?;
            let out = materialize(&mut fw.g, fw.outputs);
            retrieve(&mut fw.g, out.node);
            let mut ids = vec![out.node];
            compile(&mut fw, &mut ids)?;
            arm_graph(&mut fw, &mut ids, self.arms.len(), None);
            let width = out.shape()[1];
            self.eval_graphs.insert(key, EvalGraph { fw, output: ids[0], width });
        }
        let eg = self.eval_graphs.get_mut(&key).expect("inserted above");
        let unmasked = vec![None; params.len()];
        load_params(&mut eg.fw, &params.iter().collect::<Vec<_>>(), &unmasked);
        feed_input(&mut eg.fw, &split.x, indices)?;
        eg.fw.g.cx.execute();
        Ok((take_arms(&mut eg.fw, eg.output)?, eg.width))
    }

    /// Current weights of a session of one arm (masked entries exactly 0).
    pub fn params(&self) -> Result<NamedTensors> {
        self.arm_params(0)
    }

    /// Current weights of `arm` (masked entries exactly 0).
    pub fn arm_params(&self, arm: usize) -> Result<NamedTensors> {
        let mut out = BTreeMap::new();
        for (p, def) in self.step_graph.params.iter().zip(&self.defs) {
            let data = leaf_value(&self.step_graph.g, p.leaf, arm).ok_or_else(|| {
                Error::Other(format!("weights of `{}` are missing from the graph", def.name))
            })?;
            out.insert(def.name.clone(), HostTensor::new(def.shape.clone(), data.clone()));
        }
        Ok(out)
    }

    /// `arm`'s optimizer state, for checkpoints.
    pub fn optimizer_state(&self, arm: usize) -> NamedTensors {
        self.arms[arm].optimizer.export()
    }

    /// Restores `arm`'s weights, optimizer state and step count (resume). Every arm of a
    /// session must be restored to the same step.
    pub fn restore(
        &mut self,
        arm: usize,
        params: &NamedTensors,
        optimizer: &NamedTensors,
        step: u64,
    ) -> Result<()> {
        check_params(&self.defs, params)?;
        self.arms[arm].optimizer.import(optimizer, step)?;
        for p in &self.step_graph.params {
            *leaf_buffer(&mut self.step_graph.g, p.leaf, arm)? = params[&p.name].data.clone();
        }
        Ok(())
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`: the norm is taken over every gradient (in f64, in order, so the result is
/// the same for every thread count) and the factor is `max_norm / (norm + 1e-6)`, applied only
/// when below 1.
fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) {
    let norm = grads.iter().flatten().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt();
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        let factor = factor as f32;
        grads.iter_mut().flatten().for_each(|g| *g *= factor);
    }
}

/// The mutable buffer of `arm`'s value of a leaf.
fn leaf_buffer(g: &mut GraphBuilder, leaf: Var, arm: usize) -> Result<&mut Vec<f32>> {
    let t = g.cx.tensors.get_mut(&(leaf.node, 0));
    let t = match t {
        Some(t) if t.data.as_any().is::<kernels::PerArm>() => {
            t.data.as_any_mut().downcast_mut::<kernels::PerArm>().and_then(|a| a.0.get_mut(arm))
        }
        other => other.filter(|_| arm == 0),
    };
    t.and_then(|t| t.data.as_any_mut().downcast_mut::<Vec<f32>>())
        .ok_or_else(|| Error::Other("a weight buffer is missing from the graph".into()))
}

/// `arm`'s value of a leaf.
fn leaf_value(g: &GraphBuilder, leaf: Var, arm: usize) -> Option<&Vec<f32>> {
    let t = g.cx.get_tensor_ref(leaf.node, 0)?;
    let t = match t.data.as_any().downcast_ref::<kernels::PerArm>() {
        Some(arms) => arms.0.get(arm)?,
        None if arm == 0 => t,
        None => return None,
    };
    t.data.as_any().downcast_ref::<Vec<f32>>()
}
