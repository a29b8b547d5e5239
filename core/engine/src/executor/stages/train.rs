//! Train stages: one stage, or the arms of a batch in one call of the trainer, each resuming
//! from the state an interrupted attempt saved, saving states as the trainer offers them and
//! passing stop requests on.

use super::compute::{Outcome, StageCompute, StageRun};
use crate::batch;
use crate::events::{RunEvents, StageOutcome};
use crate::executor::messages::ChannelEvents;
use crate::key::StageKey;
use crate::plan::PlannedStage;
use crate::store::Store;
use ticketlab_api::artifact::{Artifact, DensityReport, ModelArtifact, RunArtifact};
use ticketlab_api::data::Dataset;
use ticketlab_api::error::catch_panic;
use ticketlab_api::metrics::{EvalRecord, RunSummary};
use ticketlab_api::plugin::{ArmJob, Params, StageContext, TrainJob, TrainObserver, TrainState};
use ticketlab_api::runtime::StopFlag;
use ticketlab_api::tensor::Architecture;
use ticketlab_api::{Error, Result};

/// A train stage: its trainer's
/// [`train_arms`](ticketlab_api::plugin::TrainerPlugin::train_arms).
pub(super) struct Train;

impl StageCompute for Train {
    fn long_running(&self) -> bool {
        true
    }

    fn compute_one(
        &self,
        run: &StageRun<'_>,
        ps: &PlannedStage,
        events: &ChannelEvents,
    ) -> Outcome {
        let mut one = self.compute(run, &[ps], events);
        one.pop().unwrap_or_else(|| Err(Error::Internal("the trainer returned no result".into())))
    }

    /// The arms that can share a compiled graph train together ([`batch::split_at_start`]).
    fn compute(
        &self,
        run: &StageRun<'_>,
        stages: &[&PlannedStage],
        events: &ChannelEvents,
    ) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = stages.iter().map(|_| None).collect();
        let mut arms = Vec::with_capacity(stages.len());
        for (i, ps) in stages.iter().enumerate() {
            if let Some(reason) = run.options.rungs.cut.get(&ps.stage.name) {
                results[i] = Some(cut_run(run, ps, reason));
                continue;
            }
            match inputs(run, ps, events) {
                // Saved at or past its rung already (an earlier run): paused without a step.
                Ok(arm) if arm.paused_by_its_state() => {
                    let step = arm.resume.as_ref().map_or(0, |state| state.step);
                    results[i] = Some(Err(Error::Interrupted { step }));
                }
                Ok(arm) => arms.push((i, arm)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let groups = batch::split_at_start(arms, |(_, arm)| {
            (arm.resume.as_ref().map(|r| r.step), arm.model)
        });
        for group in groups {
            let names: Vec<&str> =
                group.iter().map(|(i, _)| stages[*i].stage.name.as_str()).collect();
            let context = format!("stage `{}`", names.join("`, `"));
            let (indices, mut arms): (Vec<usize>, Vec<TrainInputs<'_>>) = group.into_iter().unzip();
            let runs = catch_panic(&context, || {
                let trainer = run.registry.trainer(&arms[0].plugin)?;
                let jobs = arms.iter_mut().map(TrainInputs::job).collect();
                Ok(trainer.train_arms(jobs))
            });
            let outcomes = arms.iter().map(|a| a.outcome);
            match runs {
                Ok(runs) => {
                    for ((i, trained), outcome) in indices.into_iter().zip(runs).zip(outcomes) {
                        results[i] = Some(trained.map(|r| (Artifact::Run(Box::new(r)), outcome)));
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
                r.unwrap_or_else(|| Err(Error::Internal("the trainer returned no result".into())))
            })
            .collect()
    }
}

/// What a train stage reads: its parameters, model, data, network and saved state.
fn inputs<'s>(
    run: &'s StageRun<'_>,
    ps: &'s PlannedStage,
    events: &ChannelEvents,
) -> Result<TrainInputs<'s>> {
    let stage = &ps.stage;
    let model = run.model(stage, "model")?;
    let data = run.dataset(stage, "data")?;
    let arch = run.architecture(&model.arch, &data.info)?;
    let resume = run.store.load_partial(&ps.key)?;
    let mut observer = StoreObserver {
        store: run.store,
        key: &ps.key,
        stage: &stage.name,
        events: events.clone(),
        interrupt_after: run.options.interrupt_after_steps,
        pause: run.options.rungs.pause.get(&stage.name).copied(),
        stop: &run.options.runtime.stop,
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
        plugin: run.plugin(stage)?.to_string(),
        params: Params(stage.params.clone()),
        ctx: run.context(stage),
        model,
        data,
        arch,
        resume,
        outcome,
        observer,
    })
}

/// What a train stage reads (see [`inputs`]).
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
    /// Whether the state it resumes from is at or past the rung it is to pause at.
    fn paused_by_its_state(&self) -> bool {
        let saved = self.resume.as_ref().map(|state| state.step);
        self.observer.pause.zip(saved).is_some_and(|(pause, saved)| saved >= pause)
    }

    /// The stage as one arm of [`TrainerPlugin::train_arms`](ticketlab_api::plugin::TrainerPlugin::train_arms).
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

/// Persists resumable states, forwards progress and passes stop requests on.
struct StoreObserver<'a> {
    store: &'a Store,
    key: &'a StageKey,
    stage: &'a str,
    events: ChannelEvents,
    interrupt_after: Option<u64>,
    /// The rung of successive halving it pauses at.
    pause: Option<u64>,
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
        self.stop.is_requested()
            || self.interrupt_after.is_some_and(|n| step >= n)
            || self.pause.is_some_and(|n| step >= n)
    }
}

/// The run of a copy cut by successive halving: its evaluations and weights as its saved state
/// holds them, ending there for `reason`.
fn cut_run(run: &StageRun<'_>, ps: &PlannedStage, reason: &str) -> Outcome {
    let stage = &ps.stage;
    let state = run.store.load_partial(&ps.key)?.ok_or_else(|| {
        Error::Other(format!(
            "stage `{}` was cut by successive halving, but the store no longer holds its saved state: run again to train it to its rung",
            stage.name
        ))
    })?;
    let init = run.model(stage, "model")?;
    let threshold =
        stage.params.get("threshold").and_then(serde_json::Value::as_f64).unwrap_or(0.95);
    let density = init.mask.as_ref().map_or(1.0, |m| DensityReport::of(m).density);
    let mut summary =
        RunSummary::from_records(&state.records, threshold, density).ok_or_else(|| {
            Error::Other(format!("stage `{}` was cut before its first evaluation", stage.name))
        })?;
    summary.stopped = Some(reason.to_string());
    let artifact = RunArtifact {
        init: init.clone(),
        final_params: state.params,
        checkpoints: state.checkpoints,
        records: state.records,
        summary,
    };
    Ok((Artifact::Run(Box::new(artifact)), StageOutcome::Cut))
}
