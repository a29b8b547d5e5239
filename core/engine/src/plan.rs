//! A plan: every stage of an experiment with its cache key, whether it is already stored,
//! its memory estimate and the batch it trains in; what [`crate::planner`] computes and the
//! executor runs.

use std::fmt::Write as _;

use crate::key::{Backend, StageKey};
use ticketlab_api::budget;
use ticketlab_api::ir::{StageIr, StageKind};
use ticketlab_api::text::table;

/// One stage of a plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// The stage, as checked and expanded.
    pub stage: StageIr,
    /// Its cache key.
    pub key: StageKey,
    /// The plugin's fingerprint (`kind/name@version`), `None` for rewind.
    pub fingerprint: Option<String>,
    /// Whether the store already holds its result.
    pub cached: bool,
    /// For a training stage that is not cached: the step of a saved partial state to resume.
    pub resume_from: Option<u64>,
    /// The memory the stage will use, estimated from its parameters
    /// ([`ticketlab_api::budget::Budget::estimate`]); `None` when it cannot be known before it runs.
    pub memory: Option<u64>,
    /// For a training stage that trains together with other arms in one compiled graph: the
    /// number of its batch (from 1, in plan order); `None` when it trains alone.
    pub batch: Option<usize>,
}

impl PlannedStage {
    /// `will run`, `cached`, or `will resume at step N`.
    pub fn status(&self) -> String {
        match (self.cached, self.resume_from) {
            (true, _) => "cached".into(),
            (false, Some(step)) => format!("will resume at step {step}"),
            (false, None) => "will run".into(),
        }
    }
}

/// An experiment's stages in execution order, keyed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The experiment's name.
    pub name: String,
    /// The backend the keys were computed for.
    pub backend: Backend,
    /// Stages in the IR's (topological) order.
    pub stages: Vec<PlannedStage>,
}

impl Plan {
    /// The planned stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.stage.name == name)
    }

    /// Number of stages that will compute something.
    pub fn to_run(&self) -> usize {
        self.stages.iter().filter(|s| !s.cached).count()
    }

    /// The training jobs still to compute: each training stage alone, a batch counted once.
    pub fn training_jobs(&self) -> usize {
        let training = self.stages.iter().filter(|s| s.stage.kind == StageKind::Train && !s.cached);
        let batches: std::collections::BTreeSet<usize> =
            training.clone().filter_map(|s| s.batch).collect();
        training.filter(|s| s.batch.is_none()).count() + batches.len()
    }

    /// Drops every batch: each training stage then trains alone (`--batch-arms off`).
    pub fn without_batches(mut self) -> Self {
        self.stages.iter_mut().for_each(|s| s.batch = None);
        self
    }

    /// A table for people: one line per stage with kind, plugin, key prefix, estimated memory,
    /// batch and status, followed by a count.
    pub fn render(&self) -> String {
        // The batch column only where some stage trains in a batch.
        let batched = self.stages.iter().any(|s| s.batch.is_some());
        let rows: Vec<Vec<String>> = self
            .stages
            .iter()
            .map(|s| {
                let mut row = vec![
                    s.stage.name.clone(),
                    s.stage.kind.as_str().to_string(),
                    s.stage.plugin.clone().unwrap_or_else(|| "-".into()),
                    s.key.short().to_string(),
                    s.memory.map_or_else(|| "-".into(), budget::human),
                ];
                if batched {
                    row.push(s.batch.map_or_else(|| "-".into(), |b| b.to_string()));
                }
                row.push(s.status());
                row
            })
            .collect();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "experiment {} ({} on {}/{})",
            self.name,
            plural(self.stages.len(), "stage"),
            self.backend.device,
            self.backend.precision
        );
        let mut header = vec!["stage", "kind", "plugin", "key", "memory"];
        header.extend(batched.then_some("batch"));
        header.push("status");
        for line in table(&header, &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
        let cached = self.stages.len() - self.to_run();
        let _ = write!(out, "{} to run, {cached} cached", self.to_run());
        let batches = self.stages.iter().filter_map(|s| s.batch).max().unwrap_or(0);
        if batches > 0 {
            let arms = self.stages.iter().filter(|s| s.batch.is_some()).count();
            let _ = write!(
                out,
                "; {} training in {batches} {} (each batch one compiled graph)",
                plural(arms, "arm"),
                if batches == 1 { "batch" } else { "batches" }
            );
        }
        out.push('\n');
        out
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}
