//! The plan: every stage of an experiment with its cache key and whether it is already stored.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::key::{Backend, KeyVersions, KeyedStage, StageKey, stage_key};
use super::store::Store;
use ticketlab_api::budget;
use ticketlab_api::ir::{ExperimentIr, StageIr, StageKind};
use ticketlab_api::plugin::Params;
use ticketlab_api::plugin::registry::{PluginEntry, Registry};
use ticketlab_api::runtime::Runtime;
use ticketlab_api::text::table;
use ticketlab_api::{Error, Result};

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

/// Plans `ir`: computes every stage's key and, if a store is given, whether it is cached.
///
/// Fails when a stage names a plugin the registry does not have or reads a stage that does not
/// come before it (the checker rules both out for IR it produced).
/// Keys record the runtime's device; memory estimates hold against its budget.
pub fn plan(
    ir: &ExperimentIr,
    registry: &Registry,
    store: Option<&Store>,
    runtime: &Runtime,
) -> Result<Plan> {
    plan_with(ir, registry, store, runtime, &KeyVersions::current())
}

/// [`plan`] with explicit versions hashed into the keys (see [`KeyVersions`]).
pub fn plan_with(
    ir: &ExperimentIr,
    registry: &Registry,
    store: Option<&Store>,
    runtime: &Runtime,
    versions: &KeyVersions,
) -> Result<Plan> {
    let backend = &Backend::of(runtime.device);
    let mut keys: BTreeMap<&str, StageKey> = BTreeMap::new();
    let mut stages = Vec::with_capacity(ir.stages.len());
    let memory = runtime.budget.estimate(ir, registry);
    for stage in &ir.stages {
        let entry = match (stage.kind.plugin_kind(), &stage.plugin) {
            (Some(kind), Some(name)) => {
                Some(registry.require(kind, name).map_err(|e| e.in_stage(&stage.name))?)
            }
            _ => None,
        };
        let fingerprint = match (stage.kind.plugin_kind(), &stage.plugin) {
            (Some(_), Some(_)) => entry.map(|e| e.fingerprint()),
            (Some(kind), None) => {
                return Err(Error::Other(format!(
                    "stage `{}` ({}) names no {kind} plugin",
                    stage.name,
                    stage.kind.as_str()
                )));
            }
            (None, _) => None,
        };
        let mut upstream = BTreeMap::new();
        for (port, producers) in &stage.inputs {
            let mut ks = Vec::with_capacity(producers.len());
            for p in producers {
                let k = keys.get(p.as_str()).ok_or_else(|| {
                    Error::Other(format!(
                        "stage `{}` reads `{p}` through `{port}`, but `{p}` is not an earlier stage of the experiment",
                        stage.name
                    ))
                })?;
                ks.push(k.clone());
            }
            upstream.insert(port.clone(), ks);
        }
        let key =
            stage_key(&keyed(stage, entry), fingerprint.as_deref(), &upstream, backend, versions);
        let cached = store.is_some_and(|s| s.contains(&key));
        let resume_from = match store {
            Some(s) if !cached && stage.kind == StageKind::Train => {
                s.partial_step(&key).ok().flatten()
            }
            _ => None,
        };
        keys.insert(&stage.name, key.clone());
        let memory = memory.get(&stage.name).and_then(|m| m.as_ref().ok()).copied();
        stages.push(PlannedStage {
            stage: stage.clone(),
            key,
            fingerprint,
            cached,
            resume_from,
            memory,
            batch: None,
        });
    }
    assign_batches(&mut stages, registry);
    Ok(Plan { name: ir.name.clone(), backend: backend.clone(), stages })
}

/// Groups the training stages still to compute that can train together
/// ([`TrainerPlugin::train_arms`](ticketlab_api::plugin::TrainerPlugin::train_arms)): the same trainer,
/// equal [`batch_key`](ticketlab_api::plugin::TrainerPlugin::batch_key) (and seed, when the trainer
/// draws minibatches with it), the same data (by cache key), a model descended from a model
/// stage of the same plugin and parameters (so the same shapes; other seeds give other
/// weights), masked or not alike, and the same step to resume from. A stage never joins a batch
/// holding a stage it depends on, so a batch can always start at once.
fn assign_batches(stages: &mut [PlannedStage], registry: &Registry) {
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
    let mut ancestors: Vec<std::collections::BTreeSet<usize>> = Vec::with_capacity(stages.len());
    for s in stages.iter() {
        let mut mine = std::collections::BTreeSet::new();
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

/// What of `stage` its key covers: the parameters that can change its result (every one not
/// marked [`not_in_key`](ticketlab_api::plugin::ParamSpec::not_in_key)), and its seed unless it draws
/// no random numbers (its plugin's `uses_seed`; a rewind stage only when it re-initialises).
fn keyed<'a>(stage: &'a StageIr, entry: Option<&PluginEntry>) -> KeyedStage<'a> {
    let bookkeeping: Vec<&str> = stage
        .kind
        .core_params()
        .iter()
        .chain(entry.map(|e| e.params.as_slice()).unwrap_or_default())
        .filter(|p| !p.in_key)
        .map(|p| p.name)
        .collect();
    let params = stage.params.iter().filter(|(k, _)| !bookkeeping.contains(&k.as_str()));
    let uses_seed = match (stage.kind, entry) {
        (StageKind::Rewind, _) => {
            stage.params.get("mode").and_then(|m| m.as_str()) == Some("reinit")
        }
        (StageKind::Model, _) | (_, None) => true,
        (_, Some(e)) => e.instance.uses_seed(&Params(stage.params.clone())),
    };
    KeyedStage {
        stage,
        params: params.map(|(k, v)| (k.clone(), v.clone())).collect(),
        seed: uses_seed.then_some(stage.seed),
    }
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
