//! The planner: gives every stage of an experiment its cache key ([`crate::key`]), looks it up
//! in the store, estimates its memory and assigns the batches ([`crate::batch`]).

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::key::{Backend, KeyVersions, KeyedStage, StageKey, stage_key};
use crate::plan::{Plan, PlannedStage};
use crate::store::Store;
use ticketlab_api::ir::{ExperimentIr, StageIr, StageKind};
use ticketlab_api::plugin::registry::{PluginEntry, Registry};
use ticketlab_api::plugin::{ParamSpec, Params};
use ticketlab_api::runtime::Runtime;
use ticketlab_api::{Error, Result};

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
                return Err(Error::Wiring {
                    stage: stage.name.clone(),
                    message: format!("a {} stage, names no {kind} plugin", stage.kind.as_str()),
                });
            }
            (None, _) => None,
        };
        let mut upstream = BTreeMap::new();
        for (port, producers) in &stage.inputs {
            let mut ks = Vec::with_capacity(producers.len());
            for p in producers {
                let k = keys.get(p.as_str()).ok_or_else(|| {
                    Error::Wiring {
                        stage: stage.name.clone(),
                        message: format!(
                            "reads `{p}` through `{port}`, but `{p}` is not an earlier stage of the experiment"
                        ),
                    }
                })?;
                ks.push(k.clone());
            }
            upstream.insert(port.clone(), ks);
        }
        let keyed = keyed(stage, entry, &runtime.base_dir).map_err(|e| e.in_stage(&stage.name))?;
        let key = stage_key(&keyed, fingerprint.as_deref(), &upstream, backend, versions);
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
    crate::batch::assign(&mut stages, registry);
    Ok(Plan { name: ir.name.clone(), backend: backend.clone(), stages })
}

/// What of `stage` its key covers: the parameters that can change its result (every one not
/// marked [`not_in_key`](ticketlab_api::plugin::ParamSpec::not_in_key)), its seed unless it draws
/// no random numbers (its plugin's `uses_seed`; a rewind stage only when it re-initialises), and
/// the contents of the files it reads (relative paths resolve against `base_dir`); a file that
/// cannot be read is refused before anything runs.
fn keyed<'a>(
    stage: &'a StageIr,
    entry: Option<&PluginEntry>,
    base_dir: &Path,
) -> Result<KeyedStage<'a>> {
    let specs: Vec<&ParamSpec> = stage
        .kind
        .core_params()
        .iter()
        .chain(entry.map(|e| e.params.as_slice()).unwrap_or_default())
        .collect();
    let params = stage
        .params
        .iter()
        .filter(|(k, v)| specs.iter().find(|p| p.name == k.as_str()).is_none_or(|p| p.keys(v)));
    let uses_seed = match (stage.kind, entry) {
        (StageKind::Rewind, _) => {
            stage.params.get("mode").and_then(|m| m.as_str()) == Some("reinit")
        }
        (StageKind::Model, _) => stage.core_input_files(base_dir).is_empty(),
        (_, None) => true,
        (_, Some(e)) => e.instance.uses_seed(&Params(stage.params.clone())),
    };
    let mut read = stage.core_input_files(base_dir);
    if let Some(e) = entry {
        read.extend(e.instance.input_files(&Params(stage.params.clone()), base_dir));
    }
    let files = read.iter().map(|f| file_hash(f)).collect::<Result<_>>()?;
    Ok(KeyedStage {
        stage,
        params: params.map(|(k, v)| (k.clone(), v.clone())).collect(),
        seed: uses_seed.then_some(stage.seed),
        files,
    })
}

/// The SHA-256 of `path`'s content, in lowercase hex.
fn file_hash(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| {
            Error::data(path, format!("cannot read it ({e}); a relative path in a stage's parameters is read from the experiment file's directory"))
        })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
