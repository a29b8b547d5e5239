//! The `standard` trainer: AdamW or SGD, full batch or minibatches, an evaluation schedule,
//! checkpoints, resumable state and stop rules ([`stop`]).

mod dynamic;
mod gradual;
mod select;
mod stop;

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use ticketlab_api::artifact::{DensityReport, RunArtifact};
use ticketlab_api::budget::{self, Budget};
use ticketlab_api::data::Dataset;
use ticketlab_api::metrics::{EvalRecord, Norms, RunSummary};
use ticketlab_api::plugin::{
    ArmJob, ModelSize, ParamSpec, ParamType, Params, TrainJob, TrainState, TrainerPlugin,
};
use ticketlab_api::runtime::Device;
use ticketlab_api::tensor::{Architecture, MaskSet, NamedTensors};
use ticketlab_api::{Error, Result, register_plugin, seed};
use ticketlab_tensor::{
    ArmInit, EvalResult, LossKind, LossPrecision, Objective, OptimizerConfig, OptimizerKind,
    StepSpec, TrainingSession, kernels,
};

use self::stop::{StopRule, StopWatch};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("steps", ParamType::Int, "optimizer steps (full batch: steps = epochs)").default("30000").min(0.0),
    ParamSpec::new("optimizer", ParamType::Choice(&["adamw", "sgd"]), "AdamW (decoupled weight decay) or SGD with momentum, with PyTorch semantics").default("\"adamw\""),
    ParamSpec::new("lr", ParamType::Float, "learning rate").default("0.001").min(0.0),
    ParamSpec::new("weight_decay", ParamType::Float, "weight decay (AdamW: decoupled; SGD: added to the gradient)").default("1.0").min(0.0),
    BETA1,
    BETA2,
    ParamSpec::new("eps", ParamType::Float, "AdamW epsilon").default("1e-8").min(0.0),
    ParamSpec::new("momentum", ParamType::Float, "SGD momentum").default("0.0").range_exclusive(0.0, 1.0),
    ParamSpec::new("lr_schedule", ParamType::Choice(&["constant", "cosine"]), "learning rate after the warmup: `constant`, or `cosine` decay from `lr` to 0 at `steps` (the closed form of PyTorch's CosineAnnealingLR over the steps after the warmup)").default("\"constant\""),
    ParamSpec::new("warmup_steps", ParamType::Int, "linear warmup: step t < N (from 0) uses lr * (t + 1) / N (0 = none)").default("0").min(0.0).at_most("steps"),
    ParamSpec::new("grad_clip", ParamType::Float, "clip each step's gradient to this global L2 norm before the update, as PyTorch's clip_grad_norm_ (0 = no clipping)").default("0").min(0.0),
    ParamSpec::new("batch_size", ParamType::Int, "examples per step; 0 = the whole training split (full batch)").default("0").min(0.0),
    ParamSpec::new("data_seed", ParamType::Int, "seed of the minibatch order (-1: the stage's own seed): two copies of a training from one model that set different values differ only in the order of their minibatches, as the instability analysis asks").default("-1").min(-1.0).in_key_unless_default(),
    ParamSpec::new("loss", ParamType::Choice(&["cross_entropy", "mse"]), "training loss; mse uses one-hot targets for classification").default("\"cross_entropy\""),
    ParamSpec::new("loss_precision", ParamType::Choice(&["f32", "f64"]), "compute the training loss and its gradient in the graph in f32, or on the host in f64 as the reference code does (one extra forward pass per step)").default("\"f32\""),
    ParamSpec::new("eval_every", ParamType::Int, "evaluate train and test every N steps (0 = only log-spaced points and the end)").default("100").min(0.0),
    ParamSpec::new("eval_log_points", ParamType::Int, "additional log-spaced evaluation steps between 1 and `steps`").default("0").range(0.0, 100000.0).at_most("steps"),
    ParamSpec::new("checkpoint_every", ParamType::Int, "save weights every N steps (0 = none besides step 0 and the end)").default("0").min(0.0),
    ParamSpec::new("checkpoint_steps", ParamType::IntList, "additional steps at which to save weights").default("[]").min(0.0).at_most("steps"),
    THRESHOLD,
    ParamSpec::new("resume_every", ParamType::Int, "offer a resumable state every N steps (0 = never); not in the cache key, as it cannot change the result").default("1000").min(0.0).not_in_key(),
    stop::STOP,
    gradual::PRUNE_SCHEDULE,
    dynamic::DYNAMIC,
    select::SELECT,
    ParamSpec::new("batch_arms", ParamType::Bool, "train in one compiled graph with the other arms of the run that share this stage's shapes, data and schedule (`run --batch-arms off` turns it off for a whole run); not in the cache key, as each arm gets the numbers it gets alone").default("true").not_in_key(),
];

/// The parameters each arm of a batch may have its own value of: everything the host-side
/// optimizer, the learning-rate schedule and the summary read. The others shape the compiled
/// graph or the loop, so arms trained together must agree on them.
const PER_ARM: &[&str] = &[
    "optimizer",
    "lr",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "momentum",
    "lr_schedule",
    "warmup_steps",
    "grad_clip",
    "threshold",
    "stop",
    "select",
    "batch_arms",
];

/// AdamW's beta1, shared by the trainers.
pub(crate) const BETA1: ParamSpec = ParamSpec::new("beta1", ParamType::Float, "AdamW beta1")
    .default("0.9")
    .range_exclusive(0.0, 1.0);
/// AdamW's beta2, shared by the trainers.
pub(crate) const BETA2: ParamSpec = ParamSpec::new("beta2", ParamType::Float, "AdamW beta2")
    .default("0.98")
    .range_exclusive(0.0, 1.0);
/// The accuracy threshold of t_mem and t_gen, shared by the trainers.
pub(crate) const THRESHOLD: ParamSpec =
    ParamSpec::new("threshold", ParamType::Float, "accuracy threshold P for t_mem and t_gen")
        .default("0.95")
        .range(0.0, 1.0);

/// The standard trainer.
#[derive(Default)]
struct Standard;

/// The learning rate of each step: a linear warmup over `warmup` steps, then `lr` or a cosine
/// decay from `lr` to 0 at `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LrSchedule {
    lr: f64,
    warmup: u64,
    cosine: bool,
    steps: u64,
}

impl LrSchedule {
    /// The learning rate of the update taken at `step` (0-based): `lr * (step + 1) / warmup`
    /// during the warmup, then `lr`, or the closed form of PyTorch's `CosineAnnealingLR` with
    /// `T_max` the steps after the warmup and `eta_min` 0.
    fn at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        if !self.cosine {
            return self.lr;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let t = (step - self.warmup) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t / span).cos())
    }

    /// Whether the rate ever differs from `lr`.
    fn varies(&self) -> bool {
        self.warmup > 0 || self.cosine
    }
}

/// Which steps something happens at: every `every` steps (0 = never), at the listed steps,
/// and at the first and last step. Held as a rule, not a list, so a huge `steps` allocates
/// nothing.
struct Schedule {
    every: u64,
    listed: BTreeSet<u64>,
    last: u64,
}

impl Schedule {
    fn contains(&self, step: u64) -> bool {
        step == 0
            || step == self.last
            || (self.every > 0 && step.is_multiple_of(self.every))
            || self.listed.contains(&step)
    }

    /// How many steps of `0..=last` it holds, at most.
    fn count(&self) -> u64 {
        let periodic = self.last.checked_div(self.every).map_or(0, |n| n + 1);
        periodic.saturating_add(self.listed.len() as u64).saturating_add(2)
    }
}

/// Parsed trainer parameters.
struct Recipe {
    steps: u64,
    /// The step, on the CPU: an arm trains on its runtime's device.
    step: StepSpec,
    schedule: LrSchedule,
    grad_clip: Option<f64>,
    evaluations: Schedule,
    checkpoints: Schedule,
    threshold: f64,
    resume_every: u64,
    stop: StopRule,
    /// The minibatch order's own seed (`None`: the stage's).
    data_seed: Option<u64>,
    /// Gradual magnitude pruning while training.
    gradual: Option<gradual::Gradual>,
    /// Dynamic sparse training (SET, RigL).
    dynamic: Option<dynamic::Dynamic>,
}

impl Recipe {
    fn from_params(p: &Params, train_len: usize) -> Result<Self> {
        let steps = p.usize("steps")? as u64;
        let kind =
            if p.str("optimizer")? == "sgd" { OptimizerKind::Sgd } else { OptimizerKind::AdamW };
        let optimizer = OptimizerConfig {
            kind,
            lr: p.f64("lr")?,
            weight_decay: p.f64("weight_decay")?,
            beta1: if kind == OptimizerKind::Sgd { p.f64("momentum")? } else { p.f64("beta1")? },
            beta2: p.f64("beta2")?,
            eps: p.f64("eps")?,
        };
        let batch_size = match p.usize("batch_size")? {
            0 => train_len,
            b if b > train_len => {
                return Err(Error::param(
                    "batch_size",
                    format!("{b} is larger than the training split ({train_len} examples)"),
                ));
            }
            b => b,
        };
        let loss = if p.str("loss")? == "mse" { LossKind::Mse } else { LossKind::CrossEntropy };
        let precision =
            if p.str("loss_precision")? == "f64" { LossPrecision::F64 } else { LossPrecision::F32 };
        let extra = p.usize_list("checkpoint_steps")?;
        if let Some(late) = extra.iter().find(|&&s| s as u64 > steps) {
            // Checked with the file's values before running; a sweep can still combine them.
            return Err(Error::param(
                "checkpoint_steps",
                format!(
                    "step {late} is beyond `steps` = {steps}; checkpoints must be at most `steps`"
                ),
            ));
        }
        let checkpoints = Schedule {
            every: p.usize("checkpoint_every")? as u64,
            listed: extra.into_iter().map(|s| s as u64).collect(),
            last: steps,
        };
        // Log-spaced steps (at most `steps` distinct ones exist; the count is capped by its
        // schema). Checkpoint steps are evaluated too (see `Recipe::evaluates`).
        let mut listed = BTreeSet::new();
        let points = (p.usize("eval_log_points")? as u64).min(steps + 1);
        if points > 0 && steps > 1 {
            let top = (steps as f64).ln();
            listed.extend(
                (0..points)
                    .map(|i| (top * i as f64 / (points - 1).max(1) as f64).exp().round() as u64),
            );
        }
        let evaluations = Schedule { every: p.usize("eval_every")? as u64, listed, last: steps };
        let schedule = LrSchedule {
            lr: optimizer.lr,
            warmup: p.usize("warmup_steps")? as u64,
            cosine: p.str("lr_schedule")? == "cosine",
            steps,
        };
        let grad_clip = Some(p.f64("grad_clip")?).filter(|&c| c > 0.0);
        Ok(Self {
            steps,
            step: StepSpec { loss, precision, optimizer, batch_size, device: Device::Cpu },
            schedule,
            grad_clip,
            evaluations,
            checkpoints,
            threshold: p.f64("threshold")?,
            resume_every: p.usize("resume_every")? as u64,
            stop: StopRule::from_params(p)?,
            data_seed: u64::try_from(p.i64("data_seed")?).ok(),
            gradual: gradual::Gradual::from_params(p)?.map(|g| g.within(steps)).transpose()?,
            dynamic: dynamic::Dynamic::from_params(p, steps)?,
        })
    }

    /// Whether `step` is evaluated: by the evaluation schedule, and at every checkpoint, so
    /// analyses can pair masks with accuracy.
    fn evaluates(&self, step: u64) -> bool {
        self.evaluations.contains(step) || self.checkpoints.contains(step)
    }

    /// The bytes a run keeps in memory for `weights` values in `tensors` tensors (the weights,
    /// gradients, optimizer moments and mask; every checkpoint; every evaluation record), each
    /// part refused when it alone would not fit in `limit`, naming the parameter to change.
    fn memory(&self, weights: u64, tensors: u64, limit: &Budget) -> Result<u64> {
        // Weights, gradients, two optimizer moments and a mask while training.
        let training = budget::f32_bytes(weights).saturating_mul(5);
        limit.require(
            "model",
            &format!("training {weights} weights"),
            training,
            "use a smaller model",
        )?;
        let checkpoints = self.checkpoints.count();
        let kept = budget::f32_bytes(weights).saturating_mul(checkpoints);
        limit.require(
            "checkpoint_every",
            &format!("keeping {checkpoints} checkpoints of {weights} weights"),
            kept,
            "checkpoint less often (a larger `checkpoint_every`, or 0 with `checkpoint_steps`)",
        )?;
        let evaluations = self.evaluations.count().saturating_add(checkpoints);
        // An evaluation record: steps, losses, accuracies, and two norms per tensor and in all.
        let records = (96 + 16 * (tensors + 1)).saturating_mul(evaluations);
        limit.require(
            "eval_every",
            &format!("keeping up to {evaluations} evaluations"),
            records,
            "evaluate less often (a larger `eval_every`, or 0 for log-spaced points only)",
        )?;
        Ok(training.saturating_add(kept).saturating_add(records))
    }
}

/// Per-parameter and global norms of `params`.
pub fn norms(params: &NamedTensors) -> (Norms, BTreeMap<String, Norms>) {
    let layers: BTreeMap<String, Norms> =
        params.iter().map(|(k, t)| (k.clone(), Norms { l1: t.l1(), l2: t.l2() })).collect();
    let l1 = layers.values().map(|n| n.l1).sum();
    let l2 = layers.values().map(|n| n.l2 * n.l2).sum::<f64>().sqrt();
    (Norms { l1, l2 }, layers)
}

/// The evaluation record of one arm at `step` from its train and test results; an error when
/// its train loss is not finite.
pub(crate) fn eval_record(
    step: u64,
    train: EvalResult,
    test: EvalResult,
    params: &NamedTensors,
) -> Result<EvalRecord> {
    if !train.loss.is_finite() {
        return Err(Error::Diverged {
            step,
            message: format!(
                "train loss is {}; lower the learning rate or check the data",
                train.loss
            ),
        });
    }
    let (global, layers) = norms(params);
    Ok(EvalRecord {
        step,
        train_loss: train.loss,
        train_acc: train.accuracy,
        test_loss: test.loss,
        test_acc: test.accuracy,
        norms: global,
        layers,
    })
}

/// The evaluation record of a session of one arm at `step`.
pub(crate) fn evaluate(
    session: &mut TrainingSession<'_>,
    data: &Dataset,
    step: u64,
) -> Result<EvalRecord> {
    let train = session.evaluate(&data.train)?;
    let test = session.evaluate(&data.test)?;
    eval_record(step, train, test, &session.params()?)
}

/// The examples of minibatch number `step`: a fresh seeded shuffle per step, so a resumed
/// run draws exactly the batches an uninterrupted one would.
fn minibatch(seed_value: u64, step: u64, n: usize, size: usize) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed::splitmix64(
        seed_value ^ seed::splitmix64(step),
    ));
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng);
    idx.truncate(size);
    idx
}

impl TrainerPlugin for Standard {
    fn train(&self, params: &Params, job: TrainJob<'_>) -> Result<RunArtifact> {
        // Reborrowed, so the job lives as long as `params`.
        let TrainJob { arch, init, data, ctx, resume, observer } = job;
        let job = TrainJob { arch, init, data, ctx, resume, observer: &mut *observer };
        self.train_arms(vec![ArmJob { params, job }]).pop().expect("one result per arm")
    }

    fn batch_key(&self, params: &Params) -> Option<Params> {
        if !params.bool("batch_arms").unwrap_or(true) {
            return None;
        }
        let shared = params.0.iter().filter(|(k, _)| !PER_ARM.contains(&k.as_str()));
        Some(Params(shared.map(|(k, v)| (k.clone(), v.clone())).collect()))
    }

    /// The arms are split over the kernel threads (with `--jobs`, those of every worker the
    /// executor gave the batch), each share trained in one compiled graph on its own thread
    /// (every arm's numbers are the same whatever the split).
    fn train_arms(&self, arms: Vec<ArmJob<'_>>) -> Vec<Result<RunArtifact>> {
        let mut results: Vec<Option<Result<RunArtifact>>> = (0..arms.len()).map(|_| None).collect();
        let mut ready = Vec::with_capacity(arms.len());
        for (index, arm) in arms.into_iter().enumerate() {
            match Arm::new(arm) {
                Ok(arm) => ready.push((index, arm)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let threads = kernels::threads().clamp(1, ready.len().max(1));
        let mut shares: Vec<Vec<(usize, Arm<'_>)>> = (0..threads).map(|_| Vec::new()).collect();
        let per_share = ready.len().div_ceil(threads);
        for (position, arm) in ready.into_iter().enumerate() {
            shares[position / per_share.max(1)].push(arm);
        }
        shares.retain(|share| !share.is_empty());
        // Each share has a thread of its own: its products are not split again.
        let alone = shares.len() > 1;
        let train = move |share| {
            if alone {
                kernels::with_threads(1, || train_together(share))
            } else {
                train_together(share)
            }
        };
        let trained = std::thread::scope(|scope| {
            let mut shares = shares.into_iter();
            let here = shares.next();
            let others: Vec<_> = shares.map(|share| scope.spawn(move || train(share))).collect();
            let mut trained = here.map(train).unwrap_or_default();
            for handle in others {
                // `train_together` catches panics; a thread that still dies loses its arms.
                trained.extend(handle.join().unwrap_or_default());
            }
            trained
        });
        for (index, result) in trained {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::Internal("the arm's training thread died".into())))
            })
            .collect()
    }

    fn memory(&self, params: &Params, model: &ModelSize, budget: &Budget) -> Result<Option<u64>> {
        let recipe = Recipe::from_params(params, model.examples as usize)?;
        recipe.memory(model.weights, model.tensors, budget).map(Some)
    }

    /// Only minibatches are drawn with the seed, and not when `data_seed` gives them their own;
    /// full-batch training draws nothing.
    fn uses_seed(&self, params: &Params) -> bool {
        let own_seed = params.i64("data_seed").is_ok_and(|s| s >= 0);
        params.usize("batch_size").map_or(true, |b| b != 0) && !own_seed
    }
}

/// One arm while it trains.
struct Arm<'a> {
    recipe: Recipe,
    job: TrainJob<'a>,
    records: Vec<EvalRecord>,
    checkpoints: BTreeMap<u64, NamedTensors>,
    /// Why it stopped before the end (it diverged, or its observer refused a state).
    failed: Option<Error>,
    /// Its stop rule at work.
    watch: StopWatch,
    /// Why its stop rule ended it, and its weights there.
    stopped: Option<(String, NamedTensors)>,
    /// Its mask now: the model's, or, under gradual pruning, the last one the schedule set
    /// (all ones before, for a dense model).
    mask: Option<MaskSet>,
}

impl<'a> Arm<'a> {
    /// Reads the arm's recipe and checks its memory.
    fn new(arm: ArmJob<'a>) -> Result<Self> {
        let recipe = Recipe::from_params(arm.params, arm.job.data.train.len())?;
        let init = arm.job.init;
        let weights = init.params.values().map(|t| t.data.len() as u64).sum();
        recipe.memory(weights, init.params.len() as u64, &arm.job.ctx.runtime.budget)?;
        let watch = StopWatch::new(recipe.stop.clone(), recipe.threshold, &[]);
        let mask = match (&init.mask, recipe.gradual) {
            (None, Some(_)) => Some(gradual::full_mask(&init.params, &init.prunable)),
            (mask, _) => mask.clone(),
        };
        if recipe.dynamic.is_some() && mask.is_none() {
            return Err(Error::param(
                "dynamic",
                "dynamic sparse training keeps each layer's density, and this model is dense: train a sparse model (a rewind with a mask), or set `prune_schedule` too",
            ));
        }
        Ok(Self {
            recipe,
            job: arm.job,
            records: Vec::new(),
            checkpoints: BTreeMap::new(),
            failed: None,
            watch,
            stopped: None,
            mask,
        })
    }

    /// Whether it still trains: not failed, not ended by its stop rule.
    fn live(&self) -> bool {
        self.failed.is_none() && self.stopped.is_none()
    }

    /// Records `result`'s error as the reason the arm stopped.
    fn check<T>(&mut self, result: Result<T>) -> Option<T> {
        result.map_err(|e| self.failed = Some(e)).ok()
    }

    /// The run (ending where its stop rule ended it), or why the arm failed.
    fn finish(self, final_params: Result<NamedTensors>) -> Result<RunArtifact> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let init = self.job.init;
        let density = self.mask.as_ref().map_or(1.0, |m| DensityReport::of(m).density);
        let mut summary = RunSummary::from_records(&self.records, self.recipe.threshold, density)
            .ok_or_else(|| Error::Other("training produced no evaluation".into()))?;
        let final_params = match self.stopped {
            Some((reason, params)) => {
                summary.stopped = Some(reason);
                params
            }
            None => final_params?,
        };
        Ok(RunArtifact {
            init: init.clone(),
            final_params,
            checkpoints: self.checkpoints,
            records: self.records,
            summary,
        })
    }
}

/// Trains `arms` (with their indices) in one session: the first arm's architecture, data,
/// steps and schedules are every arm's (the executor groups only arms that agree on them).
/// Each result is the arm's own; an error that concerns the whole session fails every arm.
fn train_together<'a>(arms: Vec<(usize, Arm<'a>)>) -> Vec<(usize, Result<RunArtifact>)> {
    let (indices, mut arms): (Vec<usize>, Vec<Arm<'a>>) = arms.into_iter().unzip();
    let outcome = ticketlab_api::error::catch_panic("training", || run_arms(&mut arms));
    let finals: Vec<Result<NamedTensors>> = match outcome {
        Ok(finals) => finals.into_iter().map(Ok).collect(),
        Err(e) => e.shared_by(arms.len()).into_iter().map(Err).collect(),
    };
    indices.into_iter().zip(arms.into_iter().zip(finals).map(|(arm, f)| arm.finish(f))).collect()
}

/// The training loop of [`train_together`]: each arm's final weights (an arm its stop rule
/// ended keeps its own in [`Arm::stopped`]).
fn run_arms(arms: &mut [Arm<'_>]) -> Result<Vec<NamedTensors>> {
    let data = arms[0].job.data;
    let steps = arms[0].recipe.steps;
    let step_spec = StepSpec { device: arms[0].job.ctx.runtime.device, ..arms[0].recipe.step };
    let full_batch = step_spec.batch_size == data.train.len();
    let start = arms[0].job.resume.as_ref().map_or(0, |state| state.step);
    let mut restored = Vec::with_capacity(arms.len());
    for arm in arms.iter_mut() {
        let Some(state) = arm.job.resume.take() else {
            restored.push(None);
            continue;
        };
        if state.step != start {
            return Err(Error::Batch("must resume from the same step".into()));
        }
        arm.records = state.records;
        arm.checkpoints = state.checkpoints;
        if let Some(mask) = saved_mask(&state.optimizer) {
            arm.mask = Some(mask);
        }
        arm.watch = StopWatch::new(arm.recipe.stop.clone(), arm.recipe.threshold, &arm.records);
        restored.push(Some((state.params, state.optimizer)));
    }
    // The session trains the arms in `active` (slot i is arm active[i]).
    let mut active: Vec<usize> = (0..arms.len()).collect();
    let mut session = compile(arms, &active, &restored, start, &step_spec, full_batch)?;
    let seed_value = arms[0].recipe.data_seed.unwrap_or(arms[0].job.ctx.seed);
    for step in start..=steps {
        if arms[0].recipe.evaluates(step)
            && arms.iter().any(|a| a.live() && a.records.last().is_none_or(|r| r.step < step))
        {
            let train = session.evaluate_arms(&data.train)?;
            let test = session.evaluate_arms(&data.test)?;
            for (slot, &index) in active.iter().enumerate() {
                let arm = &mut arms[index];
                if !arm.live() || arm.records.last().is_some_and(|r| r.step >= step) {
                    continue;
                }
                let params = session.arm_params(slot)?;
                let record = eval_record(step, train[slot], test[slot], &params);
                let record = match record {
                    Err(Error::Diverged { .. }) if arm.recipe.stop.stops_on_divergence() => {
                        arm.stopped =
                            Some((format!("diverged: train loss {}", train[slot].loss), params));
                        continue;
                    }
                    other => other,
                };
                if let Some(record) = arm.check(record) {
                    arm.job.observer.on_eval(&record, steps);
                    let stop = (step < steps).then(|| arm.watch.after(&record)).flatten();
                    arm.records.push(record);
                    if let Some(reason) = stop {
                        arm.stopped = Some((format!("{reason} (stopped at step {step})"), params));
                    }
                }
            }
        }
        if arms[0].recipe.checkpoints.contains(step) {
            for (slot, &index) in active.iter().enumerate() {
                if arms[index].failed.is_none() {
                    arms[index].checkpoints.insert(step, session.arm_params(slot)?);
                }
            }
        }
        // A resumed state already holds the mask updates of the step it was saved at.
        let updates = step > start || start == 0;
        if let Some(rate) = arms[0].recipe.gradual.and_then(|g| g.rate_at(step)).filter(|_| updates)
        {
            prune_gradually(&mut session, arms, &active, rate)?;
        }
        let dynamic = arms[0].recipe.dynamic.filter(|_| updates);
        if let Some((d, fraction)) = dynamic.and_then(|d| Some((d, d.fraction_at(step)?))) {
            let batch = (!full_batch).then(|| {
                let idx = minibatch(seed_value, step, data.train.len(), step_spec.batch_size);
                data.train.select(&idx)
            });
            let split = batch.as_ref().unwrap_or(&data.train);
            drop_and_grow(&mut session, arms, &active, d, fraction, step, split)?;
        }
        let resume_every = arms[0].recipe.resume_every;
        if step > start && resume_every > 0 && step % resume_every == 0 && step < steps {
            save_states(&session, arms, &active, step)?;
        }
        if step == steps || !arms.iter().any(Arm::live) {
            break;
        }
        // A stop (Ctrl-C, SIGTERM) ends every arm of the session here, each with its state at
        // this step saved unless the periodic save above just did, so a rerun resumes from it.
        if step > start && arms.iter().any(|a| a.live() && a.job.observer.stop_requested(step)) {
            if resume_every == 0 || step % resume_every != 0 {
                save_states(&session, arms, &active, step)?;
            }
            for arm in arms.iter_mut().filter(|a| a.live()) {
                arm.failed = Some(Error::Interrupted { step });
            }
            break;
        }
        // Arms their stop rules ended leave: the others go on in a smaller session, restored
        // to this step exactly as a resumed run would be.
        if active.iter().any(|&i| !arms[i].live()) {
            let kept: Vec<usize> = active.iter().copied().filter(|&i| arms[i].live()).collect();
            let mut states: Vec<Option<(NamedTensors, NamedTensors)>> = vec![None; arms.len()];
            for (slot, &index) in active.iter().enumerate() {
                if kept.contains(&index) {
                    let state = (session.arm_params(slot)?, session.optimizer_state(slot));
                    states[index] = Some(state);
                }
            }
            active = kept;
            session = compile(arms, &active, &states, step, &step_spec, full_batch)?;
        }
        if !full_batch {
            let idx = minibatch(seed_value, step, data.train.len(), step_spec.batch_size);
            session.set_batch(&data.train.select(&idx))?;
        }
        for (slot, &index) in active.iter().enumerate() {
            let schedule = arms[index].recipe.schedule;
            if schedule.varies() {
                session.set_lr(slot, schedule.at(step));
            }
        }
        let losses = session.step_arms()?;
        for (&index, loss) in active.iter().zip(losses) {
            let arm = &mut arms[index];
            if arm.live() && !loss.is_finite() {
                if arm.recipe.stop.stops_on_divergence() {
                    let params =
                        session.arm_params(active.iter().position(|&i| i == index).unwrap_or(0))?;
                    arm.stopped =
                        Some((format!("diverged: train loss {loss} at step {}", step + 1), params));
                } else {
                    arm.failed = Some(Error::loss_diverged(step + 1, loss));
                }
            }
        }
    }
    let mut finals: Vec<NamedTensors> = vec![NamedTensors::new(); arms.len()];
    for (slot, &index) in active.iter().enumerate() {
        finals[index] = session.arm_params(slot)?;
    }
    Ok(finals)
}

/// A session training the arms `active`, each restored to `step` from its state in `states`
/// (weights and optimizer state; `None`: from its initialisation), with its gradient clipping and,
/// for full-batch training, the whole training split as the batch.
fn compile<'a>(
    arms: &[Arm<'a>],
    active: &[usize],
    states: &[Option<(NamedTensors, NamedTensors)>],
    step: u64,
    spec: &StepSpec,
    full_batch: bool,
) -> Result<TrainingSession<'a>> {
    let inits = active
        .iter()
        .map(|&i| ArmInit {
            params: arms[i].job.init.params.clone(),
            mask: arms[i].mask.clone(),
            optimizer: arms[i].recipe.step.optimizer,
        })
        .collect();
    let (arch, data): (&'a dyn Architecture, &'a Dataset) = (arms[0].job.arch, arms[0].job.data);
    let mut session = TrainingSession::with_arms(arch, inits, spec, &data.train)?;
    for (slot, &index) in active.iter().enumerate() {
        session.set_grad_clip(slot, arms[index].recipe.grad_clip);
        if let Some((params, optimizer)) = &states[index] {
            session.restore(slot, params, optimizer, step)?;
        }
    }
    if full_batch {
        session.set_batch(&data.train)?;
    }
    Ok(session)
}

/// Where a resumable state keeps a gradually pruned arm's mask, beside its optimizer state.
const MASK_STATE: &str = "mask/";

/// The mask a resumable state kept (gradual pruning), if any.
fn saved_mask(state: &NamedTensors) -> Option<MaskSet> {
    let mask: MaskSet = state
        .iter()
        .filter_map(|(key, t)| {
            key.strip_prefix(MASK_STATE).map(|name| (name.to_string(), t.clone()))
        })
        .collect();
    (!mask.is_empty()).then_some(mask)
}

/// Sets each live arm's mask to the magnitude mask at `rate` of its weights now, inside the
/// compiled graph.
fn prune_gradually(
    session: &mut TrainingSession<'_>,
    arms: &mut [Arm<'_>],
    active: &[usize],
    rate: f64,
) -> Result<()> {
    for (slot, &index) in active.iter().enumerate() {
        let arm = &mut arms[index];
        let Some(alive) = arm.mask.as_ref().filter(|_| arm.live()) else { continue };
        let mask = gradual::magnitude_mask(&session.arm_params(slot)?, alive, rate)?;
        session.set_mask(slot, mask.clone())?;
        arm.mask = Some(mask);
    }
    Ok(())
}

/// One update of dynamic sparse training for each live arm: drop the smallest active weights
/// and grow as many at random (SET) or where the dense gradient on `split` is largest (RigL).
fn drop_and_grow(
    session: &mut TrainingSession<'_>,
    arms: &mut [Arm<'_>],
    active: &[usize],
    schedule: dynamic::Dynamic,
    fraction: f64,
    step: u64,
    split: &ticketlab_api::data::Split,
) -> Result<()> {
    for (slot, &index) in active.iter().enumerate() {
        let arm = &mut arms[index];
        let Some(mask) = arm.mask.as_ref().filter(|_| arm.live()) else { continue };
        let weights = session.arm_params(slot)?;
        let scores = match schedule.grow {
            dynamic::Grow::Random => dynamic::random_scores(mask, arm.job.ctx.seed, step),
            dynamic::Grow::Gradient => {
                let objective = match arm.recipe.step.loss {
                    LossKind::Mse => Objective::Mse,
                    LossKind::CrossEntropy => Objective::CrossEntropy { temperature: 1.0 },
                };
                let device = arm.recipe.step.device;
                let g = ticketlab_tensor::gradients(
                    arm.job.arch,
                    &weights,
                    None,
                    split,
                    objective,
                    device,
                )?;
                dynamic::magnitudes(&g, mask)
            }
        };
        let next = dynamic::drop_and_grow(mask, &weights, &scores, fraction);
        session.set_mask(slot, next.clone())?;
        arm.mask = Some(next);
    }
    Ok(())
}

/// Offers every live arm's resumable state at `step` to its observer; an arm whose state cannot
/// be saved stops with that error.
fn save_states(
    session: &TrainingSession<'_>,
    arms: &mut [Arm<'_>],
    active: &[usize],
    step: u64,
) -> Result<()> {
    for (slot, &index) in active.iter().enumerate() {
        let arm = &mut arms[index];
        if !arm.live() {
            continue;
        }
        let mut optimizer = session.optimizer_state(slot);
        if arm.recipe.gradual.is_some() || arm.recipe.dynamic.is_some() {
            for (name, m) in arm.mask.iter().flatten() {
                optimizer.insert(format!("{MASK_STATE}{name}"), m.clone());
            }
        }
        let state = TrainState {
            step,
            params: session.arm_params(slot)?,
            optimizer,
            records: arm.records.clone(),
            checkpoints: arm.checkpoints.clone(),
            rng_counter: step,
        };
        let saved = arm.job.observer.on_checkpoint(&state);
        arm.check(saved);
    }
    Ok(())
}

register_plugin!(
    Trainer,
    "standard",
    "1.0.0",
    "AdamW/SGD with PyTorch semantics, full batch or minibatch, evaluation schedule and checkpoints",
    PARAMS,
    Standard
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_schedule_includes_ends_checkpoints_and_log_points() {
        let p = Params::new()
            .with("steps", 1000)
            .with("eval_every", 400)
            .with("eval_log_points", 4)
            .with("checkpoint_every", 0)
            .with("checkpoint_steps", vec![250])
            .with("resume_every", 0)
            .with_defaults(PARAMS);
        let r = Recipe::from_params(&p, 10).unwrap();
        let listed = |f: &dyn Fn(u64) -> bool| (0..=r.steps).filter(|&s| f(s)).collect::<Vec<_>>();
        assert_eq!(listed(&|s| r.evaluates(s)), vec![0, 1, 10, 100, 250, 400, 800, 1000]);
        assert_eq!(listed(&|s| r.checkpoints.contains(s)), vec![0, 250, 1000]);
        assert_eq!(r.step.batch_size, 10);
    }

    #[test]
    fn huge_step_counts_allocate_nothing_until_their_memory_is_checked() {
        let recipe = |steps: u64, eval_every: u64| {
            let p = Params::new()
                .with("steps", steps)
                .with("eval_every", eval_every)
                .with("checkpoint_every", 0)
                .with("eval_log_points", 100000)
                .with_defaults(PARAMS);
            Recipe::from_params(&p, 10).unwrap()
        };
        let start = std::time::Instant::now();
        let r = recipe(i64::MAX as u64, 100);
        assert!(start.elapsed().as_secs() < 5, "the schedule was built step by step");
        assert!(r.evaluates(0) && r.evaluates(200) && r.evaluates(i64::MAX as u64));
        assert!(!r.evaluates(201) || r.evaluations.listed.contains(&201));
        let err = r.memory(1000, 3, &Budget::default()).unwrap_err().to_string();
        assert!(
            err.contains("parameter `eval_every`") && err.contains("evaluate less often"),
            "{err}"
        );
        // Without periodic evaluations, a long run keeps only the log-spaced points.
        assert!(recipe(i64::MAX as u64, 0).memory(1000, 3, &Budget::default()).is_ok());
        let p = Params::new()
            .with("steps", 1_000_000_000)
            .with("checkpoint_every", 1)
            .with("eval_every", 0)
            .with_defaults(PARAMS);
        let err = Recipe::from_params(&p, 10)
            .unwrap()
            .memory(1000, 3, &Budget::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter `checkpoint_every`"), "{err}");
        let err =
            recipe(100, 10).memory(u64::MAX / 8, 3, &Budget::default()).unwrap_err().to_string();
        assert!(err.contains("parameter `model`") && err.contains("smaller model"), "{err}");
    }

    #[test]
    fn learning_rates_warm_up_linearly_then_stay_or_decay_as_a_cosine() {
        let s = LrSchedule { lr: 1.0, warmup: 4, cosine: true, steps: 104 };
        let at = |step| s.at(step);
        assert_eq!([at(0), at(1), at(3)], [0.25, 0.5, 1.0]);
        assert_eq!(at(4), 1.0);
        assert!((at(54) - 0.5).abs() < 1e-12, "half way down: {}", at(54));
        assert!(at(103) > 0.0 && at(103) < 1e-3 && at(104).abs() < 1e-12);
        let constant = LrSchedule { lr: 0.1, warmup: 0, cosine: false, steps: 10 };
        assert!(!constant.varies() && constant.at(7) == 0.1);
    }

    #[test]
    fn minibatches_are_seeded_per_step() {
        assert_eq!(minibatch(7, 3, 50, 10), minibatch(7, 3, 50, 10));
        assert_ne!(minibatch(7, 3, 50, 10), minibatch(7, 4, 50, 10));
    }
}
