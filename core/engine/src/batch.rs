//! Batched arms: the one rule of which training stages train together, and how a batch takes
//! workers.
//!
//! The planner decides the batches ([`assign`]); the executor starts each batch whole
//! ([`hold`], [`workers`]) and hands it to its trainer's
//! [`train_arms`](ticketlab_api::plugin::TrainerPlugin::train_arms); the trainer trusts the
//! grouping. What only the run can know, the step each arm resumes from (another process may
//! have saved a state since the plan) and the parameters its mask covers, splits a batch once
//! more when it starts ([`split_at_start`]): arms of one compiled graph must agree on both.

use std::collections::{BTreeMap, BTreeSet};

use ticketlab_api::artifact::ModelArtifact;
use ticketlab_api::ir::StageKind;
use ticketlab_api::plugin::Params;
use ticketlab_api::plugin::registry::Registry;

use crate::plan::PlannedStage;

/// Groups the training stages still to compute that can train together: the same trainer,
/// equal [`batch_key`](ticketlab_api::plugin::TrainerPlugin::batch_key) (and seed, when the
/// trainer draws minibatches with it), the same data (by cache key), a model descended from a
/// model stage of the same plugin and parameters (so the same shapes; other seeds give other
/// weights), masked or not alike, and the same step to resume from. A stage never joins a batch
/// holding a stage it depends on, so a batch can always start at once. Batches are numbered from
/// 1 in plan order; a stage alone gets none.
pub fn assign(stages: &mut [PlannedStage], registry: &Registry) {
    let index: BTreeMap<&str, usize> =
        stages.iter().enumerate().map(|(i, s)| (s.stage.name.as_str(), i)).collect();
    let input = |i: usize, port: &str| -> Option<usize> {
        match stages[i].stage.inputs.get(port).map(Vec::as_slice) {
            Some([one]) => index.get(one.as_str()).copied(),
            _ => None,
        }
    };
    // The model stage a stage's network descends from, and whether a mask was applied on the way.
    let lineage = |mut i: usize| -> Option<(usize, bool)> {
        let mut masked = false;
        loop {
            match stages[i].stage.kind {
                StageKind::Model => return Some((i, masked)),
                StageKind::Train => i = input(i, "model")?,
                StageKind::Rewind => {
                    masked |= stages[i].stage.inputs.contains_key("mask");
                    i = input(i, "from")?;
                }
                _ => return None,
            }
        }
    };
    let mut ancestors: Vec<BTreeSet<usize>> = Vec::with_capacity(stages.len());
    for s in stages.iter() {
        let mut mine = BTreeSet::new();
        for p in s.stage.inputs.values().flatten() {
            if let Some(&j) = index.get(p.as_str()) {
                mine.insert(j);
                mine.extend(ancestors[j].iter().copied());
            }
        }
        ancestors.push(mine);
    }
    // Candidate batches by what their members must share, each a list of members.
    let mut batches: Vec<(String, Vec<usize>)> = Vec::new();
    for i in 0..stages.len() {
        let s = &stages[i];
        if s.stage.kind != StageKind::Train || s.cached {
            continue;
        }
        let Some(trainer) = s.stage.plugin.as_deref().and_then(|n| registry.trainer(n).ok()) else {
            continue;
        };
        let params = Params(s.stage.params.clone());
        let (Some(shared), Some((model, masked)), Some(data)) =
            (trainer.batch_key(&params), lineage(i), input(i, "data"))
        else {
            continue;
        };
        let seed = trainer.uses_seed(&params).then_some(s.stage.seed);
        let network = (&stages[model].stage.plugin, &stages[model].stage.params);
        let data = stages[data].key.as_str();
        let key = serde_json::json!([
            s.stage.plugin,
            shared.0,
            seed,
            network,
            masked,
            data,
            s.resume_from
        ])
        .to_string();
        match batches
            .iter_mut()
            .find(|(k, members)| *k == key && members.iter().all(|m| !ancestors[i].contains(m)))
        {
            Some((_, members)) => members.push(i),
            None => batches.push((key, vec![i])),
        }
    }
    let groups = batches.into_iter().map(|(_, members)| members).filter(|m| m.len() > 1);
    for (number, members) in groups.enumerate() {
        for i in members {
            stages[i].batch = Some(number + 1);
        }
    }
}

/// The executor's workers: how many there are, how many are busy, and how many of those train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    /// Stages computed at once (`--jobs`).
    pub jobs: usize,
    /// Kernel threads of one worker (`--threads`).
    pub per_worker: usize,
    /// Workers busy now.
    pub running: usize,
    /// Of those, the workers held by trainings (the rest are busy for seconds at most).
    pub training: usize,
}

/// Whether a batch about to start waits: for `members_pending` (members whose inputs are still
/// computed, none of them failed), or, holding `arms` arms to train, for workers busy with
/// stages that do not train, since a batch cannot take more workers once it has started. The
/// scheduler stops holding batches when nothing else could run.
pub fn hold(members_pending: bool, arms: usize, workers: &Workers) -> bool {
    let fills = arms.div_ceil(workers.per_worker).min(workers.jobs);
    let waits_for_workers =
        fills > workers.jobs - workers.running && workers.running > workers.training;
    members_pending || waits_for_workers
}

/// The workers a piece of work holds: as many free ones as its `arms` training arms fill (one
/// per `per_worker` arms), at least one. A batch trains over all their kernel threads, so
/// batched arms use every core their stages trained one by one would have.
pub fn workers(arms: usize, workers: &Workers) -> usize {
    arms.div_ceil(workers.per_worker).clamp(1, workers.jobs.saturating_sub(workers.running).max(1))
}

/// Splits the arms of a batch into the groups that can share a compiled graph, in order: those
/// that resume from the same step and mask the same parameters (`arms` gives each arm's resume
/// step and model).
pub fn split_at_start<T>(
    arms: Vec<T>,
    key: impl Fn(&T) -> (Option<u64>, &ModelArtifact),
) -> Vec<Vec<T>> {
    let mut groups: Vec<(Option<u64>, Vec<String>, Vec<T>)> = Vec::new();
    for arm in arms {
        let (resume, model) = key(&arm);
        let masked: Vec<String> =
            model.mask.iter().flatten().map(|(name, _)| name.clone()).collect();
        match groups.iter_mut().find(|(r, m, _)| *r == resume && *m == masked) {
            Some((_, _, members)) => members.push(arm),
            None => groups.push((resume, masked, vec![arm])),
        }
    }
    groups.into_iter().map(|(_, _, members)| members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_the_free_workers_its_arms_fill_and_waits_for_short_work() {
        let w = Workers { jobs: 2, per_worker: 1, running: 0, training: 0 };
        assert_eq!(workers(6, &w), 2);
        assert_eq!(workers(1, &w), 1);
        assert!(!hold(false, 6, &w));
        assert!(hold(true, 6, &w), "members still computed");
        // One worker busy loading: the batch waits for it rather than train on one core.
        let loading = Workers { running: 1, ..w };
        assert!(hold(false, 6, &loading));
        assert_eq!(workers(6, &loading), 1);
        // One worker busy training: waiting could take hours, so the batch starts.
        let training = Workers { running: 1, training: 1, ..w };
        assert!(!hold(false, 6, &training));
        // Arms that fit the free workers start at once.
        assert!(!hold(false, 1, &loading));
        let wide = Workers { jobs: 1, per_worker: 3, running: 0, training: 0 };
        assert_eq!(workers(6, &wide), 1);
    }
}
