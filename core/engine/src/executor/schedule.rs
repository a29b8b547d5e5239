//! The scheduler: which stage starts when, on how many workers, and what the workers tell it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, mpsc};
use std::thread::Scope;
use std::time::{Duration, Instant};

use super::claim::{Claimed, Claims, Work};
use super::messages::{ChannelEvents, Message};
use super::stages::{self, StageRun};
use super::{ExecOptions, Execution};
use crate::batch::{self, Workers};
use crate::events::{RunEvents, StageOutcome, StageReport};
use crate::plan::{Plan, PlannedStage};
use crate::store::Store;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::{Error, Result};
use ticketlab_tensor::kernels;

/// How often a run waiting for another process's stages looks at the store again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Executes `plan` against `store`, reporting to `events`.
///
/// Stages run on worker threads, at most [`ExecOptions::jobs`] at once: a stage starts once
/// every stage it reads has finished, earlier stages of the plan first. Each stage computes the
/// same numbers whatever runs beside it, so any number of jobs gives the results of one job.
/// With one job, stages start and finish in plan order. The members of a batch start together,
/// on as many free workers as their arms fill ([`crate::batch`]); a batch waits for members whose
/// inputs are still computed and for workers busy with stages that do not train, while other
/// stages can run.
///
/// A stage is computed under the store's lease for its key ([`crate::lease`]), so processes that
/// share a store split the work. While it runs, the execution records the keys of its plan in the
/// store ([`Store::register_run`]), so that `store gc` keeps them. A stop request
/// ([`ExecOptions::runtime`]) ends every training at its next step boundary, with its state saved,
/// and starts nothing more.
pub fn execute(
    plan: &Plan,
    registry: &Registry,
    store: &Store,
    options: &ExecOptions,
    events: &mut dyn RunEvents,
) -> Execution {
    events.plan_ready(plan);
    let _active = store.register_run(plan).map_err(|e| events.log(&format!("warning: {e}"))).ok();
    let mut scheduler = Scheduler::new(plan, registry, store, options);
    let (tx, rx) = mpsc::channel::<Message>();
    std::thread::scope(|scope| {
        loop {
            let held_back = scheduler.start_ready(scope, &tx, events);
            if scheduler.running == 0 && scheduler.started.iter().all(|&s| s) {
                break;
            }
            // Nothing runs and a batch waited for members: start it with the members it has.
            if scheduler.running == 0 && held_back {
                scheduler.hold_batches = false;
                continue;
            }
            scheduler.hold_batches = true;
            let finished = scheduler.receive(&rx, events);
            scheduler.finish(finished, events);
        }
    });
    scheduler.into_execution()
}

/// Results received from workers: each stage's index and result, with the seconds its work took.
type Finished = Vec<(usize, Result<(Artifact, StageOutcome)>, f64)>;

/// The state of one execution between scheduling passes.
struct Scheduler<'p> {
    plan: &'p Plan,
    registry: &'p Registry,
    store: &'p Store,
    options: &'p ExecOptions,
    artifacts: BTreeMap<String, Arc<Artifact>>,
    reports: Vec<Option<StageReport>>,
    errors: Vec<Option<Error>>,
    /// Stages that failed or could not run, each with the failed stage it waits on.
    blocked: BTreeMap<&'p str, &'p str>,
    /// Of those, the stages stopped on request.
    stopped: BTreeSet<&'p str>,
    /// Of those, the trainings paused at a rung of successive halving.
    paused: BTreeSet<&'p str>,
    started: Vec<bool>,
    claims: Claims,
    /// Workers busy now.
    running: usize,
    /// Of those, the workers held by trainings.
    training: usize,
    interrupted: bool,
    /// Whether a batch waits for members whose inputs are still being computed, or for workers
    /// busy with stages that do not train ([`batch::hold`]). It stops waiting when nothing else
    /// could run, so the scheduler never stalls on a batch.
    hold_batches: bool,
}

impl<'p> Scheduler<'p> {
    fn new(
        plan: &'p Plan,
        registry: &'p Registry,
        store: &'p Store,
        options: &'p ExecOptions,
    ) -> Self {
        let n = plan.stages.len();
        Self {
            plan,
            registry,
            store,
            options,
            artifacts: BTreeMap::new(),
            reports: vec![None; n],
            errors: (0..n).map(|_| None).collect(),
            blocked: BTreeMap::new(),
            stopped: BTreeSet::new(),
            paused: BTreeSet::new(),
            started: vec![false; n],
            claims: Claims::new(n),
            running: 0,
            training: 0,
            interrupted: false,
            hold_batches: true,
        }
    }

    fn workers(&self) -> Workers {
        Workers {
            jobs: self.options.jobs.max(1),
            per_worker: self.options.runtime.threads.max(1),
            running: self.running,
            training: self.training,
        }
    }

    /// The report of `ps` with `outcome`.
    fn report(
        ps: &PlannedStage,
        outcome: StageOutcome,
        seconds: f64,
        error: Option<String>,
    ) -> StageReport {
        StageReport {
            name: ps.stage.name.clone(),
            kind: ps.stage.kind,
            plugin: ps.stage.plugin.clone(),
            key: ps.key.clone(),
            outcome,
            seconds,
            error,
        }
    }

    /// Records `report` for stage `index` and tells `events`.
    fn record(&mut self, index: usize, report: StageReport, events: &mut dyn RunEvents) {
        events.stage_finished(&self.plan.stages[index].stage, &report);
        self.reports[index] = Some(report);
    }

    /// Whether every input of `ps` is available.
    fn ready(&self, ps: &PlannedStage) -> bool {
        ps.stage.inputs.values().flatten().all(|p| self.artifacts.contains_key(p))
    }

    /// The failed stage `ps` waits on (directly or through a stage that could not run), if any.
    fn waiting_on(&self, ps: &PlannedStage) -> Option<&'p str> {
        ps.stage.inputs.values().flatten().find_map(|p| self.blocked.get(p.as_str()).copied())
    }

    /// Starts (or skips) every stage that can, in plan order, while workers are free; returns
    /// whether a batch was held back.
    fn start_ready<'s>(
        &mut self,
        scope: &'s Scope<'s, '_>,
        tx: &mpsc::Sender<Message>,
        events: &mut dyn RunEvents,
    ) -> bool
    where
        'p: 's,
    {
        self.interrupted |= self.options.runtime.stop.is_requested();
        let plan = self.plan;
        let jobs = self.options.jobs.max(1);
        let mut held_back = false;
        // The batches held back in this pass: none of their members starts without the others.
        let mut held: Vec<usize> = Vec::new();
        for (index, ps) in plan.stages.iter().enumerate() {
            if self.started[index] {
                continue;
            }
            if let Some(origin) = self.options.rungs.not_run.get(&ps.stage.name) {
                let origin = plan.stage(origin).map_or("", |o| o.stage.name.as_str());
                self.skip(index, Some(origin), events);
                continue;
            }
            let waits_on = self.waiting_on(ps);
            if self.interrupted || waits_on.is_some() {
                self.skip(index, waits_on, events);
                continue;
            }
            if self.running == jobs {
                break;
            }
            if ps.batch.is_some_and(|batch| held.contains(&batch)) {
                continue;
            }
            if !self.ready(ps) {
                if let Some(batch) = ps.batch.filter(|_| self.hold_batches) {
                    held.push(batch);
                    held_back = true;
                }
                continue;
            }
            let Some(members) = self.members(index) else {
                held.extend(ps.batch);
                held_back = true;
                continue;
            };
            let work = self.claim(members, tx, events);
            if !work.is_empty() {
                self.spawn(work, scope, tx);
            }
        }
        held_back
    }

    /// Marks stage `index` as not run: it needs the failed stage `waits_on`, or the run stopped.
    fn skip(&mut self, index: usize, waits_on: Option<&'p str>, events: &mut dyn RunEvents) {
        let ps = &self.plan.stages[index];
        if let Some(failed) = waits_on {
            self.blocked.insert(&ps.stage.name, failed);
        }
        let why = match waits_on {
            Some(f) if self.paused.contains(f) => {
                format!("waits for `{f}`, paused at a rung of successive halving")
            }
            Some(f) if self.options.rungs.cut.contains_key(f) => {
                format!("reads `{f}`, cut by successive halving")
            }
            Some(f) if !self.stopped.contains(f) => {
                format!("needs the result of `{f}`, which failed")
            }
            _ => "the run was stopped before it started".to_string(),
        };
        let report = Self::report(ps, StageOutcome::NotRun, 0.0, Some(why));
        self.started[index] = true;
        self.record(index, report, events);
    }

    /// Stage `index` and, when it heads a batch (its first member not started), the other
    /// members ready to train with it; `None` when the batch waits ([`batch::hold`]).
    fn members(&self, index: usize) -> Option<Vec<usize>> {
        let plan = self.plan;
        let mut members = vec![index];
        let Some(batch) = plan.stages[index].batch else { return Some(members) };
        let others = (index + 1..plan.stages.len())
            .filter(|&j| !self.started[j] && plan.stages[j].batch == Some(batch));
        let (ready_now, later): (Vec<usize>, Vec<usize>) =
            others.partition(|&j| self.ready(&plan.stages[j]));
        members.extend(ready_now);
        let pending = later.iter().any(|&j| self.waiting_on(&plan.stages[j]).is_none());
        let arms = members.iter().filter(|&&m| !self.store.contains(&plan.stages[m].key)).count();
        let wait = self.hold_batches && batch::hold(pending, arms, &self.workers());
        (!wait).then_some(members)
    }

    /// Claims `members`, returning the work this process does now; a stage that cannot be had
    /// fails at once.
    fn claim(
        &mut self,
        members: Vec<usize>,
        tx: &mpsc::Sender<Message>,
        events: &mut dyn RunEvents,
    ) -> Vec<Work<'p>> {
        let plan = self.plan;
        let mut work = Vec::with_capacity(members.len());
        for member in members {
            let ps = &plan.stages[member];
            // Reads a copy cut by successive halving: computed for this run, never loaded.
            if self.options.rungs.unstored.contains(&ps.stage.name) {
                self.started[member] = true;
                events.stage_started(&ps.stage, &ps.key, false);
                work.push(Work { index: member, stage: ps, cached: false, lease: None });
                continue;
            }
            let only_stored = self.options.only_stored.as_deref();
            let steal = self.options.steal_leases;
            match self.claims.claim(member, ps, self.store, steal, only_stored, events) {
                Claimed::Work(w) => {
                    self.started[member] = true;
                    events.stage_started(&ps.stage, &ps.key, w.cached);
                    work.push(w);
                }
                Claimed::Elsewhere => {}
                Claimed::Failed(e) => {
                    self.started[member] = true;
                    self.running += 1;
                    let results = vec![(member, Err(e))];
                    let _ = tx.send(Message::Finished {
                        results,
                        seconds: 0.0,
                        workers: 1,
                        long: false,
                    });
                }
            }
        }
        work
    }

    /// Runs `work` on a worker thread holding as many free workers as its arms fill, over all
    /// their kernel threads.
    fn spawn<'s>(
        &mut self,
        work: Vec<Work<'p>>,
        scope: &'s Scope<'s, '_>,
        tx: &mpsc::Sender<Message>,
    ) where
        'p: 's,
    {
        let arms = work.iter().filter(|w| !w.cached).count();
        let workers = batch::workers(arms, &self.workers());
        let threads = workers * self.options.runtime.threads.max(1);
        let long = work.iter().any(|w| !w.cached && stages::of(w.stage.stage.kind).long_running());
        self.running += workers;
        if long {
            self.training += workers;
        }
        let run = StageRun {
            plan: self.plan,
            registry: self.registry,
            store: self.store,
            options: self.options,
            artifacts: self.artifacts.clone(),
        };
        let events = ChannelEvents(tx.clone());
        scope.spawn(move || {
            let start = Instant::now();
            let results = kernels::with_threads(threads, || stages::run_work(&run, work, &events));
            let seconds = start.elapsed().as_secs_f64();
            let _ = events.0.send(Message::Finished { results, seconds, workers, long });
        });
    }

    /// Forwards progress as it comes, and returns once work has finished (all that has, so no
    /// worker counts as busy when it is not) or the wait for another process's stages has timed
    /// out.
    fn receive(&mut self, rx: &mpsc::Receiver<Message>, events: &mut dyn RunEvents) -> Finished {
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
                Message::Finished { results, seconds, workers, long } => {
                    self.running -= workers;
                    if long {
                        self.training -= workers;
                    }
                    finished.extend(results.into_iter().map(|(i, r)| (i, r, seconds)));
                }
            }
        }
        finished
    }

    /// Takes in finished stages: their artifacts, or their failures.
    fn finish(&mut self, finished: Finished, events: &mut dyn RunEvents) {
        let plan = self.plan;
        for (index, result, seconds) in finished {
            let ps = &plan.stages[index];
            let stage = &ps.stage;
            let report = match result {
                Ok((artifact, outcome)) => {
                    if let Artifact::Mask(m) = &artifact {
                        for w in &m.warnings {
                            events.log(&format!("{}: warning: {w}", stage.name));
                        }
                    }
                    self.artifacts.insert(stage.name.clone(), Arc::new(artifact));
                    Self::report(ps, outcome, seconds, None)
                }
                Err(Error::Interrupted { step })
                    if self.options.rungs.pause.contains_key(&stage.name) =>
                {
                    self.paused.insert(&stage.name);
                    self.blocked.insert(&stage.name, &stage.name);
                    Self::report(ps, StageOutcome::Paused { step }, seconds, None)
                }
                Err(e @ Error::Interrupted { step }) => {
                    self.interrupted = true;
                    self.stopped.insert(&stage.name);
                    self.blocked.insert(&stage.name, &stage.name);
                    self.errors[index] = Some(e.in_stage(&stage.name));
                    Self::report(ps, StageOutcome::Interrupted { step }, seconds, None)
                }
                Err(e) => {
                    self.blocked.insert(&stage.name, &stage.name);
                    let e = e.in_stage(&stage.name);
                    let report =
                        Self::report(ps, StageOutcome::Failed, seconds, Some(e.to_string()));
                    self.errors[index] = Some(e);
                    report
                }
            };
            self.record(index, report, events);
        }
    }

    fn into_execution(self) -> Execution {
        Execution {
            reports: self
                .reports
                .into_iter()
                .map(|r| r.expect("every stage is reported"))
                .collect(),
            // Every worker's copy is gone once the scope ends, so the artifacts unwrap without a
            // copy.
            artifacts: self
                .artifacts
                .into_iter()
                .map(|(k, a)| (k, Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())))
                .collect(),
            error: self.errors.into_iter().flatten().next(),
            stopped: self.interrupted,
        }
    }
}
