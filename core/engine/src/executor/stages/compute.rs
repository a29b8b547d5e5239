//! The interface every stage kind computes behind, and what a piece of work reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::events::StageOutcome;
use crate::executor::ExecOptions;
use crate::executor::messages::ChannelEvents;
use crate::plan::{Plan, PlannedStage};
use crate::store::{ObjectInfo, Store};
use ticketlab_api::artifact::Artifact;
use ticketlab_api::error::catch_panic;
use ticketlab_api::ir::StageIr;
use ticketlab_api::plugin::StageContext;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::{Error, Result};

/// A stage's result and how it came to be.
pub(in crate::executor) type Outcome = Result<(Artifact, StageOutcome)>;

/// How one kind of stage computes.
pub(in crate::executor) trait StageCompute: Sync {
    /// Whether computing holds its workers for long (a training), so that a batch waiting for
    /// workers does not wait for it ([`crate::batch::hold`]).
    fn long_running(&self) -> bool {
        false
    }

    /// Computes one stage.
    fn compute_one(&self, run: &StageRun<'_>, ps: &PlannedStage, events: &ChannelEvents)
    -> Outcome;

    /// Computes `stages` (one, or the members of a batch), one result each, in order. The
    /// default computes them one by one, each inside [`catch_panic`]; a kind whose stages
    /// batch computes them together.
    fn compute(
        &self,
        run: &StageRun<'_>,
        stages: &[&PlannedStage],
        events: &ChannelEvents,
    ) -> Vec<Outcome> {
        stages
            .iter()
            .map(|ps| {
                let context = format!("stage `{}`", ps.stage.name);
                catch_panic(&context, || self.compute_one(run, ps, events))
            })
            .collect()
    }
}

/// What one piece of work reads: the plan, the plugins, the store and the artifacts of the
/// stages finished before it started.
pub(in crate::executor) struct StageRun<'a> {
    pub(in crate::executor) plan: &'a Plan,
    pub(in crate::executor) registry: &'a Registry,
    pub(in crate::executor) store: &'a Store,
    pub(in crate::executor) options: &'a ExecOptions,
    pub(in crate::executor) artifacts: BTreeMap<String, Arc<Artifact>>,
}

impl StageRun<'_> {
    /// Stores a computed stage's result, and drops a resumable state it kept while computing.
    pub(super) fn store_result(
        &self,
        ps: &PlannedStage,
        artifact: &Artifact,
        start: Instant,
    ) -> Result<()> {
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
        self.store.remove_partial(&ps.key)
    }

    /// What the plugin of `stage` is called with besides its parameters.
    pub(super) fn context(&self, stage: &StageIr) -> StageContext {
        StageContext {
            stage: stage.name.clone(),
            seed: stage.seed,
            runtime: self.options.runtime.clone(),
        }
    }

    /// The plugin `stage` names.
    pub(super) fn plugin<'s>(&self, stage: &'s StageIr) -> Result<&'s str> {
        stage.plugin.as_deref().ok_or_else(|| Error::Wiring {
            stage: stage.name.clone(),
            message: "names no plugin".into(),
        })
    }
}
