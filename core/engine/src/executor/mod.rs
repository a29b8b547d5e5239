//! The executor: runs a plan's stages against the store.
//!
//! For each stage in plan order: if the store holds its key, the result is loaded; otherwise
//! the stage's plugin is called with its parameters and typed inputs, inside
//! [`catch_panic`](ticketlab_api::error::catch_panic) (the tensor backend reports some errors by
//! panicking), and the result is stored before the stages that read it start. A failing stage
//! does not stop the others: the stages that need its result (directly or through other stages)
//! are reported as not run, and every independent stage still runs, so one diverging arm of an
//! overnight sweep costs only that arm. Finished stages stay in the store and in the returned
//! [`Execution`], so rerunning after a fix computes only what is missing.
//!
//! In parts:
//!
//! - `schedule`: which stage starts when, on which workers, and the messages workers send back;
//! - `claim`: the store's leases, so that processes sharing a store split its stages;
//! - `stages`: what each stage kind computes, one module per kind, behind one trait the
//!   scheduler knows kinds through.

mod claim;
mod messages;
mod schedule;
mod stages;

use std::collections::{BTreeMap, BTreeSet};

use super::events::{StageOutcome, StageReport};
use ticketlab_api::Error;
use ticketlab_api::artifact::Artifact;
use ticketlab_api::runtime::Runtime;

pub use schedule::execute;

/// How to execute.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
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
    /// How stages run: kernel threads of one worker, device, memory budget, stop requests and
    /// plugin isolation.
    pub runtime: Runtime,
    /// Successive halving's part in this execution: copies that pause at a rung, copies cut
    /// at one, and what reads those ([`crate::halving`]); empty otherwise.
    pub rungs: Rungs,
}

/// What one execution does to the copies of stages that select by successive halving
/// ([`crate::halving`] sets it, rung by rung).
#[derive(Debug, Clone, Default)]
pub struct Rungs {
    /// Copies that train to this step and pause there, their state saved (by stage name).
    pub pause: BTreeMap<String, u64>,
    /// Copies cut at a rung: their run ends at their saved state, with this reason.
    pub cut: BTreeMap<String, String>,
    /// Analyses and reports that read a cut copy: computed, never stored.
    pub unstored: BTreeSet<String>,
    /// Stages that would train, prune or rewind from a cut copy, with that copy: not run.
    pub not_run: BTreeMap<String, String>,
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

#[cfg(test)]
mod tests;
