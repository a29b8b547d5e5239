//! What the executor tells the outside world while it runs.
//!
//! The executor knows nothing about terminals or files: it reports to a [`RunEvents`] sink.
//! Progress bars, plain log lines for CI and the run directory's manifest are all sinks (or read
//! the [`StageReport`]s the executor returns). Every method has an empty default, so a sink
//! implements only what it shows.
//!
//! Order of calls for one execution: [`RunEvents::plan_ready`] once, then for each stage
//! [`RunEvents::stage_started`], any number of [`RunEvents::train_progress`] and
//! [`RunEvents::log`], and [`RunEvents::stage_finished`]. With one job the stages follow plan
//! order one at a time; with several, the calls of running stages interleave (each names its
//! stage), always from the thread that called the executor. A stage that needs a failed
//! stage's result is reported as not run, without starting.

use serde::{Deserialize, Serialize};

use super::key::StageKey;
use crate::plan::Plan;
use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::metrics::EvalRecord;

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StageOutcome {
    /// Loaded from the store; nothing was computed.
    Cached,
    /// Computed from scratch and stored.
    Ran,
    /// A training stage that continued from a state saved by an interrupted attempt.
    Resumed {
        /// The step the saved state had reached.
        from_step: u64,
    },
    /// A training stopped on request (Ctrl-C, SIGTERM) at `step`; its state at that step is
    /// saved if its trainer can resume, and the next run continues from there.
    Interrupted {
        /// The step at which it stopped.
        step: u64,
    },
    /// A training that trained to a rung of successive halving and paused there, its state
    /// saved ([`crate::halving`]).
    Paused {
        /// The rung.
        step: u64,
    },
    /// A training cut at a rung of successive halving: its run ends at its saved state and is
    /// not stored ([`crate::halving`]).
    Cut,
    /// Failed; the error is in [`StageReport::error`].
    Failed,
    /// Not attempted because an earlier stage failed.
    NotRun,
}

impl StageOutcome {
    /// Short label for logs: `cached`, `ran`, `resumed`, `interrupted`, `paused`, `cut`,
    /// `failed`, `not run`.
    pub fn label(&self) -> &'static str {
        match self {
            StageOutcome::Cached => "cached",
            StageOutcome::Ran => "ran",
            StageOutcome::Resumed { .. } => "resumed",
            StageOutcome::Interrupted { .. } => "interrupted",
            StageOutcome::Paused { .. } => "paused",
            StageOutcome::Cut => "cut",
            StageOutcome::Failed => "failed",
            StageOutcome::NotRun => "not run",
        }
    }

    /// Whether the stage has a result (cached, ran, resumed, or cut by successive halving).
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            StageOutcome::Cached
                | StageOutcome::Ran
                | StageOutcome::Resumed { .. }
                | StageOutcome::Cut
        )
    }
}

/// What happened to one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage's name.
    pub name: String,
    /// Its kind.
    pub kind: StageKind,
    /// The plugin's name, if the kind uses one.
    pub plugin: Option<String>,
    /// Its cache key.
    pub key: StageKey,
    /// How it ended.
    pub outcome: StageOutcome,
    /// Wall time spent on it in this execution (loading, for cached stages), in seconds.
    pub seconds: f64,
    /// The error, rendered, when it failed; for a stage not run, the failed stage it needed.
    pub error: Option<String>,
}

/// Receives the executor's progress. All methods default to doing nothing.
pub trait RunEvents {
    /// The plan is known; nothing has run yet.
    fn plan_ready(&mut self, _plan: &Plan) {}

    /// A stage starts: `cached` says whether it will only be loaded from the store.
    fn stage_started(&mut self, _stage: &StageIr, _key: &StageKey, _cached: bool) {}

    /// A training stage evaluated its model (`record.step` of `total_steps`).
    fn train_progress(&mut self, _stage: &str, _record: &EvalRecord, _total_steps: u64) {}

    /// A stage ended (successfully or not).
    fn stage_finished(&mut self, _stage: &StageIr, _report: &StageReport) {}

    /// A line of information (resumption, warnings raised by a stage).
    fn log(&mut self, _line: &str) {}
}

/// Two sinks, each told everything (the progress display and the run's live log).
impl<A: RunEvents, B: RunEvents> RunEvents for (A, B) {
    fn plan_ready(&mut self, plan: &Plan) {
        self.0.plan_ready(plan);
        self.1.plan_ready(plan);
    }

    fn stage_started(&mut self, stage: &StageIr, key: &StageKey, cached: bool) {
        self.0.stage_started(stage, key, cached);
        self.1.stage_started(stage, key, cached);
    }

    fn train_progress(&mut self, stage: &str, record: &EvalRecord, total_steps: u64) {
        self.0.train_progress(stage, record, total_steps);
        self.1.train_progress(stage, record, total_steps);
    }

    fn stage_finished(&mut self, stage: &StageIr, report: &StageReport) {
        self.0.stage_finished(stage, report);
        self.1.stage_finished(stage, report);
    }

    fn log(&mut self, line: &str) {
        self.0.log(line);
        self.1.log(line);
    }
}

/// A sink that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl RunEvents for NoEvents {}
