//! The executor: runs a plan stage by stage against the store.
//!
//! For each stage in plan order: if the store holds its key, the result is loaded; otherwise
//! the stage's plugin is called with its parameters and typed inputs, inside
//! [`catch_panic`](ticketlab_api::error::catch_panic) (the tensor backend reports some errors by
//! panicking), and the result is stored before the next stage starts. A failing stage does not
//! stop the others: the stages that need its result (directly or through other stages) are
//! reported as not run, and every independent stage still runs, so one diverging arm of an
//! overnight sweep costs only that arm. Finished stages stay in the store and in the returned
//! [`Execution`], so rerunning after a fix computes only what is missing.
//!
//! What each kind does:
//!
//! | kind | inputs | computation |
//! |---|---|---|
//! | dataset | - | [`DatasetPlugin::build`](ticketlab_api::plugin::DatasetPlugin::build) |
//! | model | `data` | [`ArchitecturePlugin::build`](ticketlab_api::plugin::ArchitecturePlugin::build), then [`init_params`] with the stage's seed |
//! | train | `model`, `data` | [`TrainerPlugin::train`](ticketlab_api::plugin::TrainerPlugin::train), resuming from `partial/<key>` if present |
//! | prune | `from`, `data`, `mask`? | weights chosen by `at`, scored from the model's own mask (all ones for a dense model) by [`ticketlab_tensor::pruning::make_mask`]; `mask` is the reference of controls such as `shuffle` |
//! | rewind | `from`, `mask`?, `data`? | weights chosen by `to`, masked by `mask` (else the model's own mask) in the stage's `mode` by [`ticketlab_tensor::rewind::rewind`] |
//! | analyze, report | `runs`, `masks`, `models`, `data` | the plugin, with [`AnalysisInputs`] |

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use super::events::{RunEvents, StageOutcome, StageReport};
use super::key::StageKey;
use super::lease::{Claim, Holder, Lease};
use super::planner::{Plan, PlannedStage};
use super::store::{ObjectInfo, Store};
use ticketlab_api::artifact::{ArchSpec, Artifact, MaskArtifact, ModelArtifact, RunArtifact};
use ticketlab_api::data::{Dataset, DatasetInfo};
use ticketlab_api::error::catch_panic;
use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::metrics::EvalRecord;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::plugin::{
    AnalysisInputs, ArmJob, Params, PluginKind, PruneContext, StageContext, TrainJob,
    TrainObserver, TrainState,
};
use ticketlab_api::runtime::{Runtime, StopFlag};
use ticketlab_api::tensor::{Architecture, NamedTensors, init_params};
use ticketlab_api::{Error, Result};
use ticketlab_tensor::kernels;
use ticketlab_tensor::{pruning, rewind};

/// How to execute.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Directory that relative data paths resolve against (the experiment file's directory).
    pub base_dir: PathBuf,
    /// Stop every training at this step, saving its state there, as a stop request
    /// ([`Runtime::stop`]) would; nothing else starts. Used to test resumption; the next
    /// execution continues from that state.
    pub interrupt_after_steps: Option<u64>,
    /// Stages computed at once (0 and 1 both mean one at a time, in plan order).
    pub jobs: usize,
    /// Only load stages from the store: a stage not stored fails with this explanation (after
    /// a Slurm array, whose tasks computed the stages).
    pub only_stored: Option<String>,
    /// Take over the stages other processes hold leases on, whether or not they look alive
    /// (`--steal-leases`: for a holder known to be gone whose lease has not expired yet).
    pub steal_leases: bool,
    /// How stages run: stop requests and plugin isolation.
    pub runtime: Runtime,
}

/// The outcome of an execution: what ran, every artifact, and the first error if any.
#[derive(Debug)]
pub struct Execution {
    /// One report per planned stage, in plan order; each failed stage's report carries its
    /// error message.
    pub reports: Vec<StageReport>,
    /// The artifact of every stage that finished (ran or cached), by stage name.
    pub artifacts: BTreeMap<String, Artifact>,
    /// The first error, in plan order (already wrapped with the stage's name).
    pub error: Option<Error>,
    /// Whether the execution was stopped on request before every stage finished.
    pub stopped: bool,
}

impl Execution {
    /// Whether every stage finished.
    pub fn is_ok(&self) -> bool {
        self.error.is_none() && !self.stopped
    }

    /// The artifact of stage `name`.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.get(name)
    }

    /// The training stages that stopped on request, with the step each stopped at.
    pub fn interrupted(&self) -> Vec<(&str, u64)> {
        self.reports
            .iter()
            .filter_map(|r| match r.outcome {
                StageOutcome::Interrupted { step } => Some((r.name.as_str(), step)),
                _ => None,
            })
            .collect()
    }

    /// Stage names by outcome label (`ran`, `cached`, ...), for summaries and tests.
    pub fn names_with(&self, outcome: fn(&StageOutcome) -> bool) -> Vec<&str> {
        self.reports.iter().filter(|r| outcome(&r.outcome)).map(|r| r.name.as_str()).collect()
    }

    /// The error message of every failed stage, in plan order.
    pub fn failures(&self) -> Vec<&str> {
        self.reports
            .iter()
            .filter(|r| r.outcome == StageOutcome::Failed)
            .filter_map(|r| r.error.as_deref())
            .collect()
    }
}

/// What a worker tells the scheduler: progress of a running stage, or the end of its work
/// (one stage, or the stages of a batch), each stage's result with its index.
enum Message {
    Progress {
        stage: String,
        record: EvalRecord,
        total_steps: u64,
    },
    Log(String),
    /// Work done; `workers` is how many of the [`ExecOptions::jobs`] it held, `trained`
    /// whether it trained (rather than loaded, pruned, rewound or reported).
    Finished {
        results: Vec<(usize, Result<(Artifact, StageOutcome)>)>,
        seconds: f64,
        workers: usize,
        trained: bool,
    },
}

/// Forwards a worker's events to the scheduler, which alone talks to the caller's sink (so
/// the sink needs no locking and sees one event at a time).
#[derive(Clone)]
struct ChannelEvents(mpsc::Sender<Message>);

impl RunEvents for ChannelEvents {
    fn train_progress(&mut self, stage: &str, record: &EvalRecord, total_steps: u64) {
        let _ = self.0.send(Message::Progress {
            stage: stage.to_string(),
            record: record.clone(),
            total_steps,
        });
    }

    fn log(&mut self, line: &str) {
        let _ = self.0.send(Message::Log(line.to_string()));
    }
}

/// Executes `plan` against `store`, reporting to `events`.
///
/// Stages run on worker threads, at most [`ExecOptions::jobs`] at once: a stage starts once
/// every stage it reads has finished, earlier stages of the plan first. Each stage computes the
/// same numbers whatever runs beside it, so any number of jobs gives the results of one job.
/// With one job, stages start and finish in plan order. The members of a batch start together,
/// on as many free workers as their arms fill; a batch waits for members whose inputs are still
/// computed and for workers busy with stages that do not train, while other stages can run.
///
/// A stage is computed under the store's lease for its key ([`crate::lease`]), so
/// processes that share a store (a Slurm array, two runs started by hand) split the work: a
/// stage another live process holds is skipped, and loaded once stored; if that process dies,
/// its lease expires and this one takes the stage over, resuming from its saved state.
pub fn execute(
    plan: &Plan,
    registry: &Registry,
    store: &Store,
    options: &ExecOptions,
    events: &mut dyn RunEvents,
) -> Execution {
    events.plan_ready(plan);
    let jobs = options.jobs.max(1);
    // The kernel threads of one worker.
    let per_worker = options.runtime.threads.max(1);
    let n = plan.stages.len();
    let mut artifacts: BTreeMap<String, Arc<Artifact>> = BTreeMap::new();
    let mut reports: Vec<Option<StageReport>> = vec![None; n];
    let mut errors: Vec<Option<Error>> = (0..n).map(|_| None).collect();
    // Stages that failed or could not run, each with the failed stage it waits on.
    let mut blocked: BTreeMap<&str, &str> = BTreeMap::new();
    // Of those, the stages stopped on request.
    let mut stopped: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut started = vec![false; n];
    // Stages another process was seen computing, with when that was last said.
    let mut announced: Vec<Option<Instant>> = vec![None; n];
    let mut running = 0usize;
    // Of those, the workers held by training (the rest are busy for seconds at most).
    let mut training_workers = 0usize;
    let mut interrupted = false;
    let (tx, rx) = mpsc::channel::<Message>();
    let report = |ps: &PlannedStage, outcome, seconds, error: Option<String>| StageReport {
        name: ps.stage.name.clone(),
        kind: ps.stage.kind,
        plugin: ps.stage.plugin.clone(),
        key: ps.key.clone(),
        outcome,
        seconds,
        error,
    };
    // Whether a batch waits for members whose inputs are still being computed, or for workers
    // busy with stages that do not train (a batch cannot take workers once it has started). It
    // stops waiting when nothing else could run, so the scheduler never stalls on a batch.
    let mut hold_batches = true;
    // Every stage this execution may read or write, kept by `store gc` while it runs.
    let _active = store.register_run(plan).map_err(|e| events.log(&format!("warning: {e}"))).ok();
    std::thread::scope(|scope| {
        loop {
            interrupted |= options.runtime.stop.is_requested();
            let mut held_back = false;
            // The batches held back in this pass: none of their members starts without the others.
            let mut held: Vec<usize> = Vec::new();
            // Start (or skip) every stage that can, in plan order, while workers are free.
            for (index, ps) in plan.stages.iter().enumerate() {
                if started[index] {
                    continue;
                }
                let stage = &ps.stage;
                let waits_on = waiting_on(ps, &blocked);
                if interrupted || waits_on.is_some() {
                    if let Some(failed) = waits_on {
                        blocked.insert(&stage.name, failed);
                    }
                    let why = match waits_on {
                        Some(f) if !stopped.contains(f) => {
                            format!("needs the result of `{f}`, which failed")
                        }
                        _ => "the run was stopped before it started".to_string(),
                    };
                    let r = report(ps, StageOutcome::NotRun, 0.0, Some(why));
                    events.stage_finished(stage, &r);
                    reports[index] = Some(r);
                    started[index] = true;
                    continue;
                }
                if running == jobs {
                    break;
                }
                let ready = |ps: &PlannedStage| {
                    ps.stage.inputs.values().flatten().all(|p| artifacts.contains_key(p))
                };
                if ps.batch.is_some_and(|batch| held.contains(&batch)) {
                    continue;
                }
                if !ready(ps) {
                    if let Some(batch) = ps.batch.filter(|_| hold_batches) {
                        held.push(batch);
                        held_back = true;
                    }
                    continue;
                }
                // The stage and, when it heads a batch (its first member not started), the other
                // members ready to train with it.
                let mut members = vec![index];
                if let Some(batch) = ps.batch {
                    let others = (index + 1..n)
                        .filter(|&j| !started[j] && plan.stages[j].batch == Some(batch));
                    let (ready_now, later): (Vec<usize>, Vec<usize>) =
                        others.partition(|&j| ready(&plan.stages[j]));
                    members.extend(ready_now);
                    let waits_for_members =
                        later.iter().any(|&j| waiting_on(&plan.stages[j], &blocked).is_none());
                    let to_train =
                        members.iter().filter(|&&m| !store.contains(&plan.stages[m].key));
                    let fills = to_train.count().div_ceil(per_worker).min(jobs);
                    let waits_for_workers = fills > jobs - running && running > training_workers;
                    if hold_batches && (waits_for_members || waits_for_workers) {
                        held.push(batch);
                        held_back = true;
                        continue;
                    }
                }
                // A stage another process sharing the store computes is skipped until its
                // result is stored or that process is gone; this process goes on with others.
                let mut work = Vec::with_capacity(members.len());
                for member in members {
                    let ps = &plan.stages[member];
                    let claimed = match &options.only_stored {
                        Some(why) if !store.contains(&ps.key) => {
                            Err(Error::Other(format!("not in the store: {why}")))
                        }
                        _ => claim(store, &ps.key, options.steal_leases),
                    };
                    match claimed {
                        Ok(Ok((cached, lease))) => {
                            if let Some(notice) =
                                lease.as_ref().and_then(Lease::taken_over).and_then(|t| t.notice())
                            {
                                events.log(&format!("{}: {notice}", ps.stage.name));
                            }
                            started[member] = true;
                            events.stage_started(&ps.stage, &ps.key, cached);
                            work.push(Work { index: member, stage: ps, cached, lease });
                        }
                        Ok(Err(holder)) => {
                            if announced[member]
                                .is_none_or(|at: Instant| at.elapsed() >= REANNOUNCE_EVERY)
                            {
                                announced[member] = Some(Instant::now());
                                events.log(&format!(
                                    "{}: {}; waiting for its result, or until its heartbeat is {} s old (rerun with --steal-leases to compute it here now)",
                                    ps.stage.name,
                                    holder.describe(),
                                    crate::lease::EXPIRES_AFTER.as_secs()
                                ));
                            }
                        }
                        Err(e) => {
                            started[member] = true;
                            running += 1;
                            let _ = tx.send(Message::Finished {
                                results: vec![(member, Err(e))],
                                seconds: 0.0,
                                workers: 1,
                                trained: false,
                            });
                        }
                    }
                }
                if work.is_empty() {
                    continue;
                }
                // A batch holds as many free workers as its arms fill at the kernel threads of
                // one, and trains over all their threads: batched arms use every core that
                // their stages trained one by one would have.
                let training = work.iter().filter(|w| !w.cached).count();
                let workers =
                    training.div_ceil(per_worker).clamp(1, jobs.saturating_sub(running).max(1));
                let threads = workers * per_worker;
                let trained =
                    work.iter().any(|w| !w.cached && w.stage.stage.kind == StageKind::Train);
                running += workers;
                if trained {
                    training_workers += workers;
                }
                let ex = Executor { plan, registry, store, options, artifacts: artifacts.clone() };
                let events = ChannelEvents(tx.clone());
                scope.spawn(move || {
                    let start = Instant::now();
                    let results = kernels::with_threads(threads, || ex.run_work(work, &events));
                    let _ = events.0.send(Message::Finished {
                        results,
                        seconds: start.elapsed().as_secs_f64(),
                        workers,
                        trained,
                    });
                });
            }
            if running == 0 && started.iter().all(|&s| s) {
                break;
            }
            // Nothing runs and a batch waited for members: start it with the members it has.
            if running == 0 && held_back {
                hold_batches = false;
                continue;
            }
            hold_batches = true;
            // Progress is forwarded as it comes; the stages are looked at again only once work
            // has finished (all that has, so no worker counts as busy when it is not) or the
            // wait for another process's stages has timed out.
            let mut finished = Vec::new();
            loop {
                let message = if finished.is_empty() {
                    match rx.recv_timeout(WAIT_POLL) {
                        Ok(message) => message,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            unreachable!("the scheduler holds a sender")
                        }
                    }
                } else {
                    match rx.try_recv() {
                        Ok(message) => message,
                        Err(_) => break,
                    }
                };
                match message {
                    Message::Progress { stage, record, total_steps } => {
                        events.train_progress(&stage, &record, total_steps)
                    }
                    Message::Log(line) => events.log(&line),
                    Message::Finished { results, seconds, workers, trained } => {
                        running -= workers;
                        if trained {
                            training_workers -= workers;
                        }
                        finished.push((results, seconds));
                    }
                }
            }
            for (index, result, seconds) in finished.into_iter().flat_map(|(results, seconds)| {
                results.into_iter().map(move |(i, r)| (i, r, seconds))
            }) {
                let ps = &plan.stages[index];
                let stage = &ps.stage;
                let r = match result {
                    Ok((artifact, outcome)) => {
                        if let Artifact::Mask(m) = &artifact {
                            for w in &m.warnings {
                                events.log(&format!("{}: warning: {w}", stage.name));
                            }
                        }
                        artifacts.insert(stage.name.clone(), Arc::new(artifact));
                        report(ps, outcome, seconds, None)
                    }
                    Err(e @ Error::Interrupted { step }) => {
                        interrupted = true;
                        stopped.insert(&stage.name);
                        blocked.insert(&stage.name, &stage.name);
                        errors[index] = Some(e.in_stage(&stage.name));
                        report(ps, StageOutcome::Interrupted { step }, seconds, None)
                    }
                    Err(e) => {
                        blocked.insert(&stage.name, &stage.name);
                        let e = e.in_stage(&stage.name);
                        let r = report(ps, StageOutcome::Failed, seconds, Some(e.to_string()));
                        errors[index] = Some(e);
                        r
                    }
                };
                events.stage_finished(stage, &r);
                reports[index] = Some(r);
            }
        }
    });
    Execution {
        reports: reports.into_iter().map(|r| r.expect("every stage is reported")).collect(),
        // Every worker's copy is gone once the scope ends, so the artifacts unwrap without a copy.
        artifacts: artifacts
            .into_iter()
            .map(|(k, a)| (k, Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())))
            .collect(),
        error: errors.into_iter().flatten().next(),
        stopped: interrupted,
    }
}

/// The failed stage `ps` waits on (directly or through a stage that could not run), if any.
fn waiting_on<'p>(ps: &PlannedStage, blocked: &BTreeMap<&str, &'p str>) -> Option<&'p str> {
    ps.stage.inputs.values().flatten().find_map(|p| blocked.get(p.as_str()).copied())
}

/// One stage of a worker's work: loaded from the store, or computed under its lease.
struct Work<'p> {
    index: usize,
    stage: &'p PlannedStage,
    cached: bool,
    /// Released once the result is stored (or the stage failed).
    lease: Option<Lease>,
}

/// How often a run waiting for another process's stages looks at the store again.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How often a run waiting for another process's stage says so again.
const REANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether `key` is stored, and else this process's lease to compute it (taken from any holder
/// when `steal`); or who else holds it.
fn claim(
    store: &Store,
    key: &StageKey,
    steal: bool,
) -> Result<std::result::Result<(bool, Option<Lease>), Holder>> {
    if store.contains(key) {
        return Ok(Ok((true, None)));
    }
    match store.claim(key, steal)? {
        // Stored between the look and the claim: load it rather than compute it again.
        Claim::Acquired(_) if store.contains(key) => Ok(Ok((true, None))),
        Claim::Acquired(lease) => Ok(Ok((false, Some(lease)))),
        Claim::HeldBy(holder) => Ok(Err(holder)),
    }
}

/// What one stage's computation reads: the plan, the plugins, the store and the artifacts of
/// the stages finished before it started.
struct Executor<'a> {
    plan: &'a Plan,
    registry: &'a Registry,
    store: &'a Store,
    options: &'a ExecOptions,
    artifacts: BTreeMap<String, Arc<Artifact>>,
}

impl Executor<'_> {
    /// Loads the cached stages of `work` and computes the others, the training stages of a
    /// batch together, storing each result before its lease is released.
    fn run_work(
        &self,
        work: Vec<Work<'_>>,
        events: &ChannelEvents,
    ) -> Vec<(usize, Result<(Artifact, StageOutcome)>)> {
        let (cached, compute): (Vec<Work<'_>>, Vec<Work<'_>>) =
            work.into_iter().partition(|w| w.cached);
        let mut results: Vec<_> = cached
            .into_iter()
            .map(|w| (w.index, self.store.load(&w.stage.key).map(|a| (a, StageOutcome::Cached))))
            .collect();
        let start = Instant::now();
        let stages: Vec<&PlannedStage> = compute.iter().map(|w| w.stage).collect();
        let computed = if stages.iter().all(|ps| ps.stage.kind == StageKind::Train) {
            self.train(&stages, events)
        } else {
            let name = |ps: &PlannedStage| format!("stage `{}`", ps.stage.name);
            stages.iter().map(|ps| catch_panic(&name(ps), || self.compute(ps))).collect()
        };
        for (w, result) in compute.into_iter().zip(computed) {
            let stored = result.and_then(|(artifact, outcome)| {
                self.store_result(w.stage, &artifact, start)?;
                Ok((artifact, outcome))
            });
            drop(w.lease);
            results.push((w.index, stored));
        }
        results
    }

    /// Stores a computed stage's result (and drops a training stage's resumable state).
    fn store_result(&self, ps: &PlannedStage, artifact: &Artifact, start: Instant) -> Result<()> {
        let stage = &ps.stage;
        let info = ObjectInfo {
            stage: &stage.name,
            kind: stage.kind,
            plugin: ps.fingerprint.as_deref(),
            params: &stage.params,
            seed: stage.seed,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.store.save(&ps.key, &info, artifact)?;
        if stage.kind == StageKind::Train {
            self.store.remove_partial(&ps.key)?;
        }
        Ok(())
    }

    /// Computes a stage of any kind but `train` (see [`Executor::train`]).
    fn compute(&self, ps: &PlannedStage) -> Result<(Artifact, StageOutcome)> {
        let stage = &ps.stage;
        let params = Params(stage.params.clone());
        let ctx = self.context(stage);
        let plugin = || {
            stage
                .plugin
                .as_deref()
                .ok_or_else(|| Error::Other(format!("stage `{}` names no plugin", stage.name)))
        };
        let ran = |a| Ok((a, StageOutcome::Ran));
        match stage.kind {
            StageKind::Dataset => {
                let data = self.registry.dataset(plugin()?)?.build(&params, &ctx)?;
                ran(Artifact::Dataset(Box::new(data)))
            }
            StageKind::Model => {
                let data = self.dataset(stage, "data")?;
                let name = plugin()?;
                let arch = self.registry.architecture(name)?.build(&params, &data.info)?;
                self.options.runtime.budget.check_weights(arch.as_ref(), &params)?;
                let weights = init_params(arch.as_ref(), stage.seed);
                ran(Artifact::Model(Box::new(ModelArtifact {
                    arch: ArchSpec { plugin: name.to_string(), params },
                    params: weights,
                    mask: None,
                    prunable: arch.prunable(),
                    origin: "init".into(),
                })))
            }
            StageKind::Train => unreachable!("training stages are computed by `Executor::train`"),
            StageKind::Prune => ran(Artifact::Mask(Box::new(self.prune(stage, &params, &ctx)?))),
            StageKind::Rewind => ran(Artifact::Model(Box::new(self.rewind(stage, &params)?))),
            StageKind::Analyze | StageKind::Report => {
                let runs = self.many(stage, "runs", "runs", |a| {
                    if let Artifact::Run(r) = a { Some(r.as_ref()) } else { None }
                })?;
                let masks = self.many(stage, "masks", "masks", |a| {
                    if let Artifact::Mask(m) = a { Some(m.as_ref()) } else { None }
                })?;
                let models = self.many(stage, "models", "models", |a| {
                    if let Artifact::Model(m) = a { Some(m.as_ref()) } else { None }
                })?;
                let data = self.data_or_upstream(stage)?;
                let spec = runs
                    .first()
                    .map(|(_, r)| &r.init.arch)
                    .or_else(|| models.first().map(|(_, m)| &m.arch));
                let arch = match (spec, data) {
                    (Some(spec), Some(d)) => Some(self.architecture(spec, &d.info)?),
                    _ => None,
                };
                let inputs =
                    AnalysisInputs { runs, masks, models, data, arch: arch.as_deref(), ctx: &ctx };
                let value = if stage.kind == StageKind::Analyze {
                    self.registry.analysis(plugin()?)?.analyze(&params, &inputs)?
                } else {
                    self.registry.report(plugin()?)?.report(&params, &inputs)?
                };
                ran(Artifact::Analysis(Box::new(value)))
            }
        }
    }

    /// Trains `stages` (one, or the members of a batch), each resuming from its saved state if
    /// it has one: those that resume from the same step and mask the same parameters train
    /// together ([`TrainerPlugin::train_arms`]). One result per stage, in order.
    fn train(
        &self,
        stages: &[&PlannedStage],
        events: &ChannelEvents,
    ) -> Vec<Result<(Artifact, StageOutcome)>> {
        let mut results: Vec<Option<Result<(Artifact, StageOutcome)>>> =
            stages.iter().map(|_| None).collect();
        let mut arms = Vec::with_capacity(stages.len());
        for (i, ps) in stages.iter().enumerate() {
            match self.train_inputs(ps, events) {
                Ok(arm) => arms.push((i, arm)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // Arms that can share a compiled graph, in plan order.
        let mut groups: Vec<Vec<(usize, TrainInputs<'_>)>> = Vec::new();
        for (i, arm) in arms {
            let fits = |g: &Vec<(usize, TrainInputs<'_>)>| {
                let other = &g[0].1;
                other.plugin == arm.plugin
                    && other.resume.as_ref().map(|r| r.step) == arm.resume.as_ref().map(|r| r.step)
                    && masked(other.model) == masked(arm.model)
            };
            match groups.iter_mut().find(|g| fits(g)) {
                Some(g) => g.push((i, arm)),
                None => groups.push(vec![(i, arm)]),
            }
        }
        for group in groups {
            let names: Vec<&str> =
                group.iter().map(|(i, _)| stages[*i].stage.name.as_str()).collect();
            let context = format!("stage `{}`", names.join("`, `"));
            let (indices, mut arms): (Vec<usize>, Vec<TrainInputs<'_>>) = group.into_iter().unzip();
            let runs = catch_panic(&context, || {
                let trainer = self.registry.trainer(&arms[0].plugin)?;
                let jobs = arms.iter_mut().map(TrainInputs::job).collect();
                Ok(trainer.train_arms(jobs))
            });
            let outcomes = arms.iter().map(|a| a.outcome);
            match runs {
                Ok(runs) => {
                    for ((i, run), outcome) in indices.into_iter().zip(runs).zip(outcomes) {
                        results[i] = Some(run.map(|r| (Artifact::Run(Box::new(r)), outcome)));
                    }
                }
                Err(e) => {
                    for (i, e) in indices.iter().zip(e.shared_by(indices.len())) {
                        results[*i] = Some(Err(e));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::Other("the trainer returned no result".into())))
            })
            .collect()
    }

    /// What a train stage reads: its parameters, model, data, network and saved state.
    fn train_inputs<'s>(
        &'s self,
        ps: &'s PlannedStage,
        events: &ChannelEvents,
    ) -> Result<TrainInputs<'s>> {
        let stage = &ps.stage;
        let model = self.model(stage, "model")?;
        let data = self.dataset(stage, "data")?;
        let arch = self.architecture(&model.arch, &data.info)?;
        let resume = self.store.load_partial(&ps.key)?;
        let mut observer = StoreObserver {
            store: self.store,
            key: &ps.key,
            stage: &stage.name,
            events: events.clone(),
            interrupt_after: self.options.interrupt_after_steps,
            stop: &self.options.runtime.stop,
        };
        let outcome = match &resume {
            Some(state) => {
                observer.events.log(&format!(
                    "{}: resuming from the state saved at step {}",
                    stage.name, state.step
                ));
                StageOutcome::Resumed { from_step: state.step }
            }
            None => StageOutcome::Ran,
        };
        Ok(TrainInputs {
            plugin: stage.plugin.clone().unwrap_or_default(),
            params: Params(stage.params.clone()),
            ctx: self.context(stage),
            model,
            data,
            arch,
            resume,
            outcome,
            observer,
        })
    }

    fn prune(&self, stage: &StageIr, params: &Params, ctx: &StageContext) -> Result<MaskArtifact> {
        let from = self.one(stage, "from")?;
        let data = self.dataset(stage, "data")?;
        let (model, weights, scored_at) = select_weights(stage, from, params.str("at")?, "at")?;
        let arch = self.architecture(&model.arch, &data.info)?;
        let reference = match self.optional(stage, "mask")? {
            Some(Artifact::Mask(m)) => Some(&m.masks),
            Some(_) => return Err(wrong_type(stage, "mask", "a mask")),
            None => None,
        };
        let dense;
        let current = match &model.mask {
            Some(m) => m,
            None => {
                dense = pruning::dense_mask(arch.as_ref());
                &dense
            }
        };
        let name = stage.plugin.as_deref().unwrap_or_default();
        let pruner_id = self.registry.require(PluginKind::Pruner, name)?.fingerprint();
        let input = PruneContext {
            arch: arch.as_ref(),
            params: weights,
            mask: current,
            reference_mask: reference,
            data,
            ctx,
            round: (0, 1),
        };
        let request = pruning::MaskRequest { pruner_id: &pruner_id, params, input, scored_at };
        pruning::make_mask(self.registry.pruner(name)?.as_ref(), &request)
    }

    fn rewind(&self, stage: &StageIr, params: &Params) -> Result<ModelArtifact> {
        let from = self.one(stage, "from")?;
        let to = params.str("to")?;
        let mode = params.str("mode")?;
        let (model, weights, _) = select_weights(stage, from, to, "to")?;
        let (mask, mask_origin) = match self.optional(stage, "mask")? {
            Some(Artifact::Mask(m)) => {
                (Some(&m.masks), format!(" with mask `{}`", self.producers(stage, "mask")[0]))
            }
            Some(_) => return Err(wrong_type(stage, "mask", "a mask")),
            None => (model.mask.as_ref(), String::new()),
        };
        let data = self.data_or_upstream(stage)?.ok_or_else(|| {
            Error::Other(format!(
                "stage `{}` cannot find the dataset its model was built for; connect it to `data`",
                stage.name
            ))
        })?;
        let arch = self.architecture(&model.arch, &data.info)?;
        let (weights, mask) = rewind::rewind(
            rewind::RewindMode::parse(mode)?,
            weights,
            mask,
            arch.as_ref(),
            stage.seed,
        )?;
        Ok(ModelArtifact {
            arch: model.arch.clone(),
            params: weights,
            mask,
            prunable: model.prunable.clone(),
            origin: format!(
                "{mode} of `{}` to {to}{mask_origin}",
                self.producers(stage, "from")[0]
            ),
        })
    }

    /// What the plugin of `stage` is called with besides its parameters.
    fn context(&self, stage: &StageIr) -> StageContext {
        StageContext {
            stage: stage.name.clone(),
            seed: stage.seed,
            base_dir: self.options.base_dir.clone(),
            runtime: self.options.runtime.clone(),
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    fn artifact(&self, name: &str) -> Result<&Artifact> {
        self.artifacts
            .get(name)
            .map(Arc::as_ref)
            .ok_or_else(|| Error::Other(format!("the result of stage `{name}` is not available")))
    }

    /// The producers connected to `port`.
    fn producers<'s>(&self, stage: &'s StageIr, port: &str) -> &'s [String] {
        stage.inputs.get(port).map(Vec::as_slice).unwrap_or_default()
    }

    fn optional(&self, stage: &StageIr, port: &str) -> Result<Option<&Artifact>> {
        match self.producers(stage, port) {
            [] => Ok(None),
            [one] => self.artifact(one).map(Some),
            many => Err(Error::Other(format!(
                "port `{port}` of stage `{}` takes one stage, not {}",
                stage.name,
                many.len()
            ))),
        }
    }

    fn one(&self, stage: &StageIr, port: &str) -> Result<&Artifact> {
        self.optional(stage, port)?.ok_or_else(|| {
            Error::Other(format!("stage `{}` needs an input on port `{port}`", stage.name))
        })
    }

    /// The artifacts connected to a list port, with their stage names; `expected` names the
    /// type for the error when `pick` refuses one.
    fn many<'a, T>(
        &'a self,
        stage: &'a StageIr,
        port: &str,
        expected: &str,
        pick: fn(&'a Artifact) -> Option<&'a T>,
    ) -> Result<Vec<(&'a str, &'a T)>> {
        self.producers(stage, port)
            .iter()
            .map(|p| {
                let a = self.artifact(p)?;
                pick(a).map(|t| (p.as_str(), t)).ok_or_else(|| wrong_type(stage, port, expected))
            })
            .collect()
    }

    fn dataset(&self, stage: &StageIr, port: &str) -> Result<&Dataset> {
        match self.one(stage, port)? {
            Artifact::Dataset(d) => Ok(d),
            _ => Err(wrong_type(stage, port, "a dataset")),
        }
    }

    fn model(&self, stage: &StageIr, port: &str) -> Result<&ModelArtifact> {
        match self.one(stage, port)? {
            Artifact::Model(m) => Ok(m),
            _ => Err(wrong_type(stage, port, "a model")),
        }
    }

    /// The dataset on the `data` port if connected, else the one found upstream.
    fn data_or_upstream(&self, stage: &StageIr) -> Result<Option<&Dataset>> {
        match stage.inputs.contains_key("data") {
            true => self.dataset(stage, "data").map(Some),
            false => Ok(self.find_dataset(&stage.name)),
        }
    }

    /// The dataset the stage's inputs were built from, searching upstream depth first.
    fn find_dataset(&self, name: &str) -> Option<&Dataset> {
        let stage = &self.plan.stage(name)?.stage;
        for producers in stage.inputs.values() {
            for p in producers {
                match self.artifacts.get(p).map(Arc::as_ref) {
                    Some(Artifact::Dataset(d)) => return Some(d),
                    Some(_) => {
                        if let Some(d) = self.find_dataset(p) {
                            return Some(d);
                        }
                    }
                    None => {}
                }
            }
        }
        None
    }

    fn architecture(&self, spec: &ArchSpec, info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        self.registry.architecture(&spec.plugin)?.build(&spec.params, info)
    }
}

fn wrong_type(stage: &StageIr, port: &str, expected: &str) -> Error {
    Error::Other(format!("stage `{}`: port `{port}` expects {expected}", stage.name))
}

/// The model (arch, mask, prunable names) and the weights a prune or rewind stage works on.
///
/// For a run, `which` (the `at` or `to` parameter) picks `final`, `init` or a checkpoint step;
/// for a model, only its own weights exist (`final` and `init` both mean them). The third value
/// is the step of the chosen weights (`None` = initialisation).
fn select_weights<'a>(
    stage: &StageIr,
    from: &'a Artifact,
    which: &str,
    param: &str,
) -> Result<(&'a ModelArtifact, &'a NamedTensors, Option<u64>)> {
    match from {
        Artifact::Run(run) => select_from_run(run, which, param).map(|(w, s)| (&run.init, w, s)),
        Artifact::Model(m) => match which {
            "final" | "init" => Ok((m.as_ref(), &m.params, None)),
            _ => Err(Error::param(
                param,
                format!(
                    "`{which}` selects a checkpoint, but `from` of stage `{}` is a model, which has none; connect a train stage or use `{param}: init`",
                    stage.name
                ),
            )),
        },
        _ => Err(wrong_type(stage, "from", "a model or a run")),
    }
}

fn select_from_run<'a>(
    run: &'a RunArtifact,
    which: &str,
    param: &str,
) -> Result<(&'a NamedTensors, Option<u64>)> {
    match which {
        "final" => Ok((&run.final_params, Some(run.summary.steps))),
        "init" => Ok((&run.init.params, None)),
        step => {
            let n: u64 = step.parse().map_err(|_| {
                Error::param(param, format!("`{step}` is not `final`, `init` or a step number"))
            })?;
            if n == 0 {
                return Ok((&run.init.params, None));
            }
            run.checkpoints.get(&n).map(|w| (w, Some(n))).ok_or_else(|| {
                let have: Vec<String> = run.checkpoints.keys().map(u64::to_string).collect();
                Error::param(
                    param,
                    format!(
                        "the run has no checkpoint at step {n}; saved steps: {}. Add {n} to the trainer's `checkpoint_steps`",
                        have.join(", ")
                    ),
                )
            })
        }
    }
}

/// What a train stage reads (see [`Executor::train_inputs`]).
struct TrainInputs<'a> {
    plugin: String,
    params: Params,
    ctx: StageContext,
    model: &'a ModelArtifact,
    data: &'a Dataset,
    arch: Box<dyn Architecture>,
    resume: Option<TrainState>,
    outcome: StageOutcome,
    observer: StoreObserver<'a>,
}

impl TrainInputs<'_> {
    /// The stage as one arm of [`TrainerPlugin::train_arms`].
    fn job(&mut self) -> ArmJob<'_> {
        ArmJob {
            params: &self.params,
            job: TrainJob {
                arch: self.arch.as_ref(),
                init: self.model,
                data: self.data,
                ctx: &self.ctx,
                resume: self.resume.take(),
                observer: &mut self.observer,
            },
        }
    }
}

/// The names of the parameters `model` masks (arms of one graph must mask the same ones).
fn masked(model: &ModelArtifact) -> Vec<&String> {
    model.mask.iter().flatten().map(|(name, _)| name).collect()
}

/// Persists resumable states, forwards progress and passes stop requests on.
struct StoreObserver<'a> {
    store: &'a Store,
    key: &'a StageKey,
    stage: &'a str,
    events: ChannelEvents,
    interrupt_after: Option<u64>,
    stop: &'a StopFlag,
}

impl TrainObserver for StoreObserver<'_> {
    fn on_eval(&mut self, record: &EvalRecord, total_steps: u64) {
        self.events.train_progress(self.stage, record, total_steps);
    }

    fn on_checkpoint(&mut self, state: &TrainState) -> Result<()> {
        self.store.save_partial(self.key, state)
    }

    fn stop_requested(&self, step: u64) -> bool {
        self.stop.is_requested() || self.interrupt_after.is_some_and(|n| step >= n)
    }
}

#[cfg(test)]
mod tests;
