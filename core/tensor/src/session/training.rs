//! Training sessions: one training step compiled once and executed many times, for one
//! network or several arms of the same shapes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use luminal::graph::NodeIndex;

use super::graph::{
    ForwardGraph, arm_graph, build_forward, check_masks, check_params, compile, feed_input,
    leaf_buffer, leaf_value, load_params, materialize, retrieve, set_arms, set_leaf, take_arms,
    token_indices,
};
use super::loss::{
    EvalResult, LossKind, LossPrecision, dense_targets, host_loss, objective_node, score_outputs,
};
use crate::autograd;
use crate::kernels::{self, ThreadTuner};
use crate::optim::{OptimizerConfig, OptimizerState};
use crate::profile::{self, Part};
use ticketlab_api::data::Split;
use ticketlab_api::error::catch_panic;
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::graph::Var;
use ticketlab_api::tensor::{Architecture, HostTensor, MaskSet, NamedTensors, ParamDef};
use ticketlab_api::{Error, Result};

/// What one training step does: the loss, its precision, the optimizer and the batch size, and
/// where it runs.
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
    /// Where the compiled step runs.
    pub device: Device,
}

impl StepSpec {
    /// The paper's recipe at `batch_size`: cross-entropy in f32, [`OptimizerConfig::paper_adamw`],
    /// on the CPU.
    pub fn paper(batch_size: usize) -> Self {
        Self {
            loss: LossKind::CrossEntropy,
            precision: LossPrecision::F32,
            optimizer: OptimizerConfig::paper_adamw(),
            batch_size,
            device: Device::Cpu,
        }
    }
}

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
    /// Whether each step splits its kernels over the kernel threads or runs on one; `None`
    /// when every step uses all of them ([`TrainingSession::fix_threads`]).
    tuner: Option<ThreadTuner>,
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
                arms.first().ok_or_else(|| Error::Internal("a session needs an arm".into()))?;
            let masked: Vec<&String> = first.mask.iter().flatten().map(|(name, _)| name).collect();
            for arm in &arms {
                check_params(&defs, &arm.params)?;
                check_masks(&defs, arm.mask.as_ref())?;
                if arm.mask.iter().flatten().map(|(name, _)| name).ne(masked.iter().copied()) {
                    return Err(Error::Batch("must mask the same parameters".into()));
                }
            }
            let mut x_shape = example.x.shape.clone();
            x_shape[0] = spec.batch_size;
            let tokens = token_indices(&example.x).is_some();
            let mut fw =
                build_forward(arch, &defs, first.mask.as_ref(), &x_shape, tokens, spec.device)?;
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
                tuner: Some(ThreadTuner::new()),
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
    ///
    /// The step's kernels split over the kernel threads ([`kernels::threads`]) or, where timing
    /// both says that one thread is faster here, run on one ([`ThreadTuner`]): the same bits
    /// either way.
    pub fn step_arms(&mut self) -> Result<Vec<f64>> {
        let available = kernels::threads();
        let Some(tuner) = &self.tuner else { return self.step_on_threads() };
        let threads = tuner.threads(available);
        let started = Instant::now();
        let losses = kernels::with_threads(threads, || self.step_on_threads());
        if let Some(tuner) = &mut self.tuner {
            tuner.record(available, threads, started.elapsed());
        }
        losses
    }

    /// Every step from now on splits its kernels over all the kernel threads, as a benchmark
    /// of the split itself needs (the same bits as tuned steps).
    pub fn fix_threads(&mut self) {
        self.tuner = None;
    }

    /// How many steps so far ran on one thread while more were available ([`ThreadTuner`]).
    pub fn single_thread_steps(&self) -> u64 {
        self.tuner.as_ref().map_or(0, ThreadTuner::single_steps)
    }

    /// [`Self::step_arms`] on the current kernel threads.
    fn step_on_threads(&mut self) -> Result<Vec<f64>> {
        catch_panic("training step", || {
            let (losses, grads) = self.loss_and_gradients()?;
            let _optimizer = profile::Span::new(Part::Optimizer);
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
            LossPrecision::F64 => {
                Some(profile::time(Part::HostLoss, || self.feed_loss_gradient())?)
            }
        };
        let fw = &mut self.step_graph;
        profile::time(Part::GraphOverhead, || fw.execute());
        let _read_out = profile::Span::new(Part::ReadOut);
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
            Error::Internal("no training batch was set: call `set_batch` before `step`".into())
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
        let threads =
            self.tuner.as_ref().map_or(kernels::threads(), |t| t.chosen(kernels::threads()));
        catch_panic("evaluation", || {
            let (outputs, width) = kernels::with_threads(threads, || self.outputs(split))?;
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
            let (arch, defs, device) = (self.arch, &self.defs, self.spec.device);
            let mut fw = build_forward(arch, defs, None, &split.x.shape, key.1, device)?;
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
        profile::time(Part::GraphOverhead, || eg.fw.execute());
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
                Error::Internal(format!("weights of `{}` are missing from the graph", def.name))
            })?;
            out.insert(def.name.clone(), HostTensor::new(def.shape.clone(), data.clone()));
        }
        Ok(out)
    }

    /// Replaces `arm`'s mask inside the compiled graph, without compiling again: the mask
    /// leaves take the new values, the weights it removes become exactly 0, and so do their
    /// optimizer moments (a weight that grows back later starts from none). The session must have
    /// been built masked, over the same parameters.
    pub fn set_mask(&mut self, arm: usize, mask: MaskSet) -> Result<()> {
        check_masks(&self.defs, Some(&mask))?;
        for (index, p) in self.step_graph.params.iter().enumerate() {
            let (leaf, values) = match (p.mask, mask.get(&p.name)) {
                (Some(leaf), Some(values)) => (leaf, values),
                (None, None) => continue,
                _ => {
                    return Err(Error::Batch(format!(
                        "must mask the same parameters: the session {} `{}`",
                        if p.mask.is_some() { "masks" } else { "does not mask" },
                        p.name
                    )));
                }
            };
            *leaf_buffer(&mut self.step_graph.g, leaf, arm)? = values.data.clone();
            let weights = leaf_buffer(&mut self.step_graph.g, p.leaf, arm)?;
            for (w, &k) in weights.iter_mut().zip(&values.data) {
                if k == 0.0 {
                    *w = 0.0;
                }
            }
            self.arms[arm].optimizer.clear_removed(index, &values.data);
        }
        self.arms[arm].mask = Some(mask);
        Ok(())
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
