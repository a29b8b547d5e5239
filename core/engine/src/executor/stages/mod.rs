//! What each stage kind computes, one module per kind, behind [`StageCompute`]: the scheduler
//! knows kinds only through [`of`].
//!
//! | kind | inputs | computation |
//! |---|---|---|
//! | dataset | - | [`DatasetPlugin::build`](ticketlab_api::plugin::DatasetPlugin::build) |
//! | model | `data` | [`ArchitecturePlugin::build`](ticketlab_api::plugin::ArchitecturePlugin::build), then [`init_params`](ticketlab_api::tensor::init_params) with the stage's seed |
//! | train | `model`, `data` | [`TrainerPlugin::train_arms`](ticketlab_api::plugin::TrainerPlugin::train_arms), the arms of a batch together, each resuming from `partial/<key>` if present |
//! | prune | `from`, `data`, `mask`? | weights chosen by `at`, scored from the model's own mask (all ones for a dense model) by [`ticketlab_tensor::pruning::make_mask`]; `mask` is the reference of controls such as `shuffle` |
//! | rewind | `from`, `mask`?, `data`? | weights chosen by `to`, masked by `mask` (else the model's own mask) in the stage's `mode` by [`ticketlab_tensor::rewind::rewind`] |
//! | analyze, report | `runs`, `masks`, `models`, `data` | the plugin, with [`AnalysisInputs`](ticketlab_api::plugin::AnalysisInputs) |

mod analyze;
mod build;
mod compute;
pub(super) mod inputs;
mod prune;
mod rewind;
mod train;

use std::time::Instant;

use super::claim::Work;
use super::messages::ChannelEvents;
use crate::events::StageOutcome;
use crate::plan::PlannedStage;
use ticketlab_api::ir::StageKind;

pub(super) use compute::{Outcome, StageCompute, StageRun};

/// How stages of `kind` compute.
pub(super) fn of(kind: StageKind) -> &'static dyn StageCompute {
    match kind {
        StageKind::Dataset => &build::Dataset,
        StageKind::Model => &build::Model,
        StageKind::Train => &train::Train,
        StageKind::Prune => &prune::Prune,
        StageKind::Rewind => &rewind::Rewind,
        StageKind::Analyze | StageKind::Report => &analyze::Analyze,
    }
}

/// Loads the cached stages of `work` and computes the others (the members of a batch
/// together), storing each result before its lease is released.
pub(super) fn run_work(
    run: &StageRun<'_>,
    work: Vec<Work<'_>>,
    events: &ChannelEvents,
) -> Vec<(usize, Outcome)> {
    let (cached, compute): (Vec<Work<'_>>, Vec<Work<'_>>) =
        work.into_iter().partition(|w| w.cached);
    let mut results: Vec<_> = cached
        .into_iter()
        .map(|w| (w.index, run.store.load(&w.stage.key).map(|a| (a, StageOutcome::Cached))))
        .collect();
    let start = Instant::now();
    let stages: Vec<&PlannedStage> = compute.iter().map(|w| w.stage).collect();
    let computed = match stages.first() {
        Some(first) => of(first.stage.kind).compute(run, &stages, events),
        None => Vec::new(),
    };
    for (w, result) in compute.into_iter().zip(computed) {
        // A copy cut by successive halving, and what reads it, are this run's alone.
        let name = &w.stage.stage.name;
        let rungs = &run.options.rungs;
        let keep = !rungs.cut.contains_key(name) && !rungs.unstored.contains(name);
        let stored = result.and_then(|(artifact, outcome)| {
            if keep {
                run.store_result(w.stage, &artifact, start)?;
            }
            Ok((artifact, outcome))
        });
        drop(w.lease);
        results.push((w.index, stored));
    }
    results
}
