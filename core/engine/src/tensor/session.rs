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
    Ok(ForwardGraph { g, params, x, tokens, outputs })
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
    let mut t =
        g.cx.get_tensor(node, 0)
            .ok_or_else(|| Error::Other("graph output was not computed".into()))?;
    t.data
        .as_any_mut()
        .downcast_mut::<Vec<f32>>()
        .map(std::mem::take)
        .ok_or_else(|| Error::Other("graph output is not a host f32 buffer".into()))
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

/// Loads weights (and masks) into a forward graph's leaves.
fn load_params(fw: &mut ForwardGraph, params: &NamedTensors, mask: Option<&MaskSet>) {
    for p in &fw.params {
        set_leaf(&mut fw.g, p.leaf, params[&p.name].data.clone());
        if let (Some(leaf), Some(m)) = (p.mask, mask.and_then(|m| m.get(&p.name))) {
            set_leaf(&mut fw.g, leaf, m.data.clone());
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
        load_params(&mut fw, params, mask);
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

/// One training step compiled once and executed many times.
///
/// The weights live in the step graph's leaf buffers; the optimizer updates them in place on
/// the host between executions (a fused loop: cheaper on CPU than ~15 extra graph nodes per
/// parameter), and masked entries are kept at exactly 0.
pub struct TrainingSession<'a> {
    arch: &'a dyn Architecture,
    defs: Vec<ParamDef>,
    mask: Option<MaskSet>,
    spec: StepSpec,
    step_graph: ForwardGraph,
    /// The leaf the step graph reads: one-hot targets (f32 loss) or the loss gradient with
    /// respect to the outputs (f64 loss).
    targets: Option<Var>,
    loss_node: NodeIndex,
    grad_nodes: Vec<NodeIndex>,
    optimizer: OptimizerState,
    /// Compiled forward graphs by split size and whether the inputs are tokens.
    eval_graphs: HashMap<(usize, bool), EvalGraph>,
    /// The current batch, kept for the extra forward pass of an f64 loss.
    batch: Option<Split>,
    /// The largest global L2 norm of a step's gradient (`None`: no clipping).
    grad_clip: Option<f64>,
}

impl<'a> TrainingSession<'a> {
    /// Compiles a session that trains as `spec` says, starting from `params`.
    pub fn new(
        arch: &'a dyn Architecture,
        params: NamedTensors,
        mask: Option<MaskSet>,
        spec: &StepSpec,
        example: &Split,
    ) -> Result<Self> {
        catch_panic("compiling the training step", || {
            let defs = arch.parameters();
            check_params(&defs, &params)?;
            check_masks(&defs, mask.as_ref())?;
            let mut x_shape = example.x.shape.clone();
            x_shape[0] = spec.batch_size;
            let tokens = token_indices(&example.x).is_some();
            let mut fw = build_forward(arch, &defs, mask.as_ref(), &x_shape, tokens)?;
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
            // Masked weights start (and stay) at exactly 0.
            let mut params = params;
            if let Some(m) = &mask {
                crate::pruning::apply_mask(&mut params, m);
            }
            load_params(&mut fw, &params, mask.as_ref());
            let optimizer = OptimizerState::new(spec.optimizer, &defs);
            Ok(Self {
                arch,
                defs,
                mask,
                spec: *spec,
                step_graph: fw,
                targets,
                loss_node: ids[0],
                grad_nodes: ids[1..].to_vec(),
                optimizer,
                eval_graphs: HashMap::new(),
                batch: None,
                grad_clip: None,
            })
        })
    }

    /// Sets the examples the next steps train on (once for full-batch training).
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

    /// One optimizer step on the current batch; returns the batch loss before the update.
    pub fn step(&mut self) -> Result<f64> {
        catch_panic("training step", || {
            let (loss, mut grads) = self.loss_and_gradients()?;
            if let Some(max_norm) = self.grad_clip {
                clip_grad_norm(&mut grads, max_norm);
            }
            let g = &mut self.step_graph.g;
            for (index, (p, grad)) in self.step_graph.params.iter().zip(&grads).enumerate() {
                let weights = leaf_buffer(g, p.leaf)?;
                let mask =
                    self.mask.as_ref().and_then(|m| m.get(&p.name)).map(|m| m.data.as_slice());
                self.optimizer.update(index, weights, grad, mask);
            }
            self.optimizer.finish_step();
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    step: self.optimizer.steps(),
                    message: format!("loss is {loss}; lower the learning rate or check the data"),
                });
            }
            Ok(loss)
        })
    }

    /// The loss on the current batch and its gradient with respect to every parameter (of the
    /// effective weights `m * theta`), without updating anything: for trainers that update
    /// something else than the weights, such as edge-popup's scores.
    pub fn gradients(&mut self) -> Result<(f64, NamedTensors)> {
        catch_panic("gradient computation", || {
            let (loss, grads) = self.loss_and_gradients()?;
            let out = self
                .defs
                .iter()
                .zip(grads)
                .map(|(d, g)| (d.name.clone(), HostTensor::new(d.shape.clone(), g)))
                .collect();
            Ok((loss, out))
        })
    }

    /// Replaces the weights (the session's mask, if any, still applies), keeping the optimizer
    /// state and step count.
    pub fn set_params(&mut self, params: &NamedTensors) -> Result<()> {
        check_params(&self.defs, params)?;
        let mut params = params.clone();
        if let Some(m) = &self.mask {
            crate::pruning::apply_mask(&mut params, m);
        }
        let mask = self.mask.clone();
        load_params(&mut self.step_graph, &params, mask.as_ref());
        Ok(())
    }

    /// Runs the step graph: the batch loss and each parameter's gradient, in parameter order.
    fn loss_and_gradients(&mut self) -> Result<(f64, Vec<Vec<f32>>)> {
        let host_loss_value = match self.spec.precision {
            LossPrecision::F32 => None,
            LossPrecision::F64 => Some(self.feed_loss_gradient()?),
        };
        let g = &mut self.step_graph.g;
        g.cx.execute();
        let graph_loss = f64::from(take(g, self.loss_node)?[0]);
        let mut grads = Vec::with_capacity(self.grad_nodes.len());
        for &node in &self.grad_nodes {
            grads.push(take(g, node)?);
        }
        Ok((host_loss_value.unwrap_or(graph_loss), grads))
    }

    /// Runs the forward pass on the current batch, computes the loss and its gradient with
    /// respect to the outputs in f64, and feeds the gradient to the step graph.
    fn feed_loss_gradient(&mut self) -> Result<f64> {
        let batch = self.batch.take().ok_or_else(|| {
            Error::Other("no training batch was set: call `set_batch` before `step`".into())
        })?;
        let outputs = self.outputs(&batch);
        let result = outputs.and_then(|(out, width)| {
            let mut grad = vec![0.0f32; out.len()];
            let loss = host_loss(&out, width, &batch.y, self.spec.loss, Some(&mut grad))?;
            let leaf = self.targets.expect("an f64 loss has a gradient leaf");
            set_leaf(&mut self.step_graph.g, leaf, grad);
            Ok(loss)
        });
        self.batch = Some(batch);
        result
    }

    /// Sets the learning rate of the next steps (for schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.optimizer.set_lr(lr);
    }

    /// Clips every step's gradient to a global L2 norm of at most `max_norm` before the update
    /// (`None`: no clipping), as PyTorch's `clip_grad_norm_` does.
    pub fn set_grad_clip(&mut self, max_norm: Option<f64>) {
        self.grad_clip = max_norm;
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.optimizer.steps()
    }

    /// Loss and accuracy on a split with the current weights.
    pub fn evaluate(&mut self, split: &Split) -> Result<EvalResult> {
        catch_panic("evaluation", || {
            let (out, width) = self.outputs(split)?;
            score_outputs(&out, width, &split.y, self.spec.loss)
        })
    }

    /// The network's outputs on `split` with the current weights, and their width (one
    /// compiled forward graph per split size, reused).
    fn outputs(&mut self, split: &Split) -> Result<(Vec<f32>, usize)> {
        let params = self.params()?;
        let indices = token_indices(&split.x);
        let key = (split.len(), indices.is_some());
        if !self.eval_graphs.contains_key(&key) {
            let mut fw = build_forward(self.arch, &self.defs, None, &split.x.shape, key.1)?;
            let out = materialize(&mut fw.g, fw.outputs);
            retrieve(&mut fw.g, out.node);
            let mut ids = vec![out.node];
            compile(&mut fw, &mut ids)?;
            let width = out.shape()[1];
            self.eval_graphs.insert(key, EvalGraph { fw, output: ids[0], width });
        }
        let eg = self.eval_graphs.get_mut(&key).expect("inserted above");
        load_params(&mut eg.fw, &params, None);
        feed_input(&mut eg.fw, &split.x, indices)?;
        eg.fw.g.cx.execute();
        Ok((take(&mut eg.fw.g, eg.output)?, eg.width))
    }

    /// Current weights (masked entries exactly 0).
    pub fn params(&self) -> Result<NamedTensors> {
        let mut out = BTreeMap::new();
        for (p, def) in self.step_graph.params.iter().zip(&self.defs) {
            let t = self.step_graph.g.cx.get_tensor_ref(p.leaf.node, 0).ok_or_else(|| {
                Error::Other(format!("weights of `{}` are missing from the graph", def.name))
            })?;
            let data = t
                .data
                .as_any()
                .downcast_ref::<Vec<f32>>()
                .cloned()
                .ok_or_else(|| Error::Other("weights are not host f32".into()))?;
            out.insert(def.name.clone(), HostTensor::new(def.shape.clone(), data));
        }
        Ok(out)
    }

    /// Optimizer state, for checkpoints.
    pub fn optimizer_state(&self) -> NamedTensors {
        self.optimizer.export()
    }

    /// Restores weights, optimizer state and step count (resume).
    pub fn restore(
        &mut self,
        params: &NamedTensors,
        optimizer: &NamedTensors,
        step: u64,
    ) -> Result<()> {
        check_params(&self.defs, params)?;
        self.optimizer.import(optimizer, step)?;
        let mask = self.mask.clone();
        load_params(&mut self.step_graph, params, mask.as_ref());
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

/// The mutable buffer of a leaf.
fn leaf_buffer(g: &mut GraphBuilder, leaf: Var) -> Result<&mut Vec<f32>> {
    g.cx.tensors
        .get_mut(&(leaf.node, 0))
        .and_then(|t| t.data.as_any_mut().downcast_mut::<Vec<f32>>())
        .ok_or_else(|| Error::Other("a weight buffer is missing from the graph".into()))
}
