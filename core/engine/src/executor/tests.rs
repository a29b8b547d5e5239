//! Executor plumbing with small in-test plugins: caching, invalidation, resumption, failures.
//!
//! The trainer here is a stand-in whose "training" is exact arithmetic (w += lr per step), so
//! these tests check the executor and the store, not numerics; the end-to-end tests with the
//! real plugins are in the workspace's integration tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::events::{NoEvents, StageOutcome};
use crate::planner::plan;
use crate::store::Store;
use ticketlab_api::artifact::{AnalysisArtifact, Artifact, RunArtifact};
use ticketlab_api::data::{Dataset, DatasetInfo, Split, Targets};
use ticketlab_api::ir::{ExperimentIr, StageIr, StageKind};
use ticketlab_api::metrics::{EvalRecord, Norms, RunSummary};
use ticketlab_api::plugin::registry::{Origin, PluginEntry, PluginInstance, Registry};
use ticketlab_api::plugin::{
    AnalysisInputs, AnalysisPlugin, ArchitecturePlugin, ArmJob, DatasetPlugin, Params, PluginKind,
    StageContext, TrainJob, TrainState, TrainerPlugin,
};
use ticketlab_api::runtime::Runtime;
use ticketlab_api::tensor::{
    Architecture, GraphBuilder, HostTensor, Init, NamedTensors, ParamDef, Var,
};
use ticketlab_api::{Error, Result};
use ticketlab_tensor::kernels;

struct Data;
impl DatasetPlugin for Data {
    fn build(&self, params: &Params, _ctx: &StageContext) -> Result<Dataset> {
        let n = params.usize("n")?;
        let split = |k: usize| Split {
            x: HostTensor::new(vec![k, 2], (0..k * 2).map(|i| i as f32).collect()),
            y: Targets::Classes { labels: (0..k as u32).map(|i| i % 2).collect(), n_classes: 2 },
        };
        Ok(Dataset {
            description: format!("{n} points"),
            info: DatasetInfo { input_shape: vec![2], output_dim: 2, tokens: None },
            train: split(n),
            test: split(2),
        })
    }
}

struct Arch;
impl Architecture for Arch {
    fn parameters(&self) -> Vec<ParamDef> {
        vec![ParamDef {
            name: "w".into(),
            shape: vec![2, 2],
            init: Init::Normal { std: 1.0 },
            prunable: true,
        }]
    }
    fn forward(&self, g: &mut GraphBuilder, params: &BTreeMap<String, Var>, x: Var) -> Result<Var> {
        g.matmul(x, params["w"])
    }
}

struct ArchPlugin;
impl ArchitecturePlugin for ArchPlugin {
    fn build(&self, _params: &Params, _info: &DatasetInfo) -> Result<Box<dyn Architecture>> {
        Ok(Box::new(Arch))
    }
}

/// "Trains" by adding `lr` to every weight per step; offers a resumable state every
/// `resume_every` steps and when asked to stop; panics at step `panic_at` if set.
struct Trainer;
impl TrainerPlugin for Trainer {
    fn train(&self, params: &Params, job: TrainJob<'_>) -> Result<RunArtifact> {
        let steps = params.usize("steps")? as u64;
        let lr = params.f64("lr")? as f32;
        let every = params.usize("resume_every")? as u64;
        let panic_at = params.i64("panic_at")?;
        let (mut w, mut records, start) = match job.resume {
            Some(s) => (s.params, s.records, s.step),
            None => (job.init.params.clone(), Vec::new(), 0),
        };
        let record = |step: u64, w: &NamedTensors| {
            let l1: f64 = w.values().map(HostTensor::l1).sum();
            EvalRecord {
                step,
                train_loss: 1.0 / (1.0 + step as f64),
                train_acc: Some((step as f64 / steps.max(1) as f64).min(1.0)),
                test_loss: 1.0,
                test_acc: Some(0.5),
                norms: Norms { l1, l2: l1 },
                layers: BTreeMap::new(),
            }
        };
        for step in start..steps {
            if step == 0 {
                records.push(record(0, &w));
            }
            if panic_at >= 0 && step == panic_at as u64 {
                panic!("boom at step {step}");
            }
            w.values_mut().for_each(|t| t.data.iter_mut().for_each(|v| *v += lr));
            let done = step + 1;
            let r = record(done, &w);
            job.observer.on_eval(&r, steps);
            records.push(r);
            let stop = done < steps && job.observer.stop_requested(done);
            if (every > 0 && done % every == 0 && done < steps) || stop {
                job.observer.on_checkpoint(&TrainState {
                    step: done,
                    params: w.clone(),
                    optimizer: BTreeMap::new(),
                    records: records.clone(),
                    checkpoints: BTreeMap::new(),
                    rng_counter: done,
                })?;
            }
            if stop {
                return Err(Error::Interrupted { step: done });
            }
        }
        let summary = RunSummary::from_records(&records, 0.95, 1.0)
            .ok_or_else(|| Error::Other("no records".into()))?;
        Ok(RunArtifact {
            init: job.init.clone(),
            final_params: w,
            checkpoints: BTreeMap::new(),
            records,
            summary,
        })
    }
}

struct CountRuns;
impl AnalysisPlugin for CountRuns {
    fn analyze(&self, _params: &Params, inputs: &AnalysisInputs<'_>) -> Result<AnalysisArtifact> {
        let names: Vec<&str> = inputs.runs.iter().map(|(n, _)| *n).collect();
        Ok(AnalysisArtifact {
            analysis: "count".into(),
            value: json!({"runs": names, "has_arch": inputs.arch.is_some()}),
        })
    }
}

fn entry(kind: PluginKind, name: &str, instance: PluginInstance) -> PluginEntry {
    PluginEntry {
        kind,
        name: name.into(),
        version: "1.0.0".into(),
        summary: String::new(),
        params: Vec::new(),
        origin: Origin::BuiltIn,
        instance,
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.insert(entry(PluginKind::Dataset, "points", PluginInstance::Dataset(Arc::new(Data))))
        .unwrap();
    r.insert(entry(
        PluginKind::Architecture,
        "lin",
        PluginInstance::Architecture(Arc::new(ArchPlugin)),
    ))
    .unwrap();
    r.insert(entry(PluginKind::Trainer, "adder", PluginInstance::Trainer(Arc::new(Trainer))))
        .unwrap();
    r.insert(entry(PluginKind::Analysis, "count", PluginInstance::Analysis(Arc::new(CountRuns))))
        .unwrap();
    r
}

fn stage(
    name: &str,
    kind: StageKind,
    plugin: &str,
    params: Value,
    inputs: &[(&str, &[&str])],
) -> StageIr {
    StageIr {
        name: name.into(),
        kind,
        plugin: Some(plugin.into()),
        params: serde_json::from_value(params).unwrap(),
        inputs: inputs
            .iter()
            .map(|(p, s)| (p.to_string(), s.iter().map(|x| x.to_string()).collect()))
            .collect(),
        seed: ticketlab_api::seed::derive(0, name),
        sweep: BTreeMap::new(),
    }
}

fn experiment(steps: u64, b_lr: f64, panic_at: i64) -> ExperimentIr {
    let train = |lr: f64, panic_at: i64| json!({"steps": steps, "lr": lr, "resume_every": 3, "panic_at": panic_at});
    ExperimentIr {
        name: "t".into(),
        description: String::new(),
        seed: 0,
        plugins: Vec::new(),
        claims: Vec::new(),
        stages: vec![
            stage("data", StageKind::Dataset, "points", json!({"n": 4}), &[]),
            stage("init", StageKind::Model, "lin", json!({}), &[("data", &["data"])]),
            stage(
                "a",
                StageKind::Train,
                "adder",
                train(0.5, -1),
                &[("model", &["init"]), ("data", &["data"])],
            ),
            stage(
                "b",
                StageKind::Train,
                "adder",
                train(b_lr, panic_at),
                &[("model", &["init"]), ("data", &["data"])],
            ),
            stage("count", StageKind::Analyze, "count", json!({}), &[("runs", &["a", "b"])]),
        ],
    }
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("ticketlab-exec-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(ir: &ExperimentIr, store: &Store, interrupt: Option<u64>) -> Execution {
    let r = registry();
    let p = plan(ir, &r, Some(store), &Runtime::default()).unwrap();
    execute(
        &p,
        &r,
        store,
        &ExecOptions { interrupt_after_steps: interrupt, jobs: 1, ..ExecOptions::default() },
        &mut NoEvents,
    )
}

fn outcomes(e: &Execution) -> Vec<(&str, &'static str)> {
    e.reports.iter().map(|r| (r.name.as_str(), r.outcome.label())).collect()
}

fn final_w(e: &Execution, name: &str) -> Vec<f32> {
    match e.artifact(name) {
        Some(Artifact::Run(r)) => r.final_params["w"].data.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_second_run_computes_nothing_and_loads_the_same_results() {
    let dir = TempDir::new("twice");
    let store = Store::new(&dir.0);
    let ir = experiment(7, 0.25, -1);
    let first = run(&ir, &store, None);
    assert!(first.is_ok(), "{:?}", first.error);
    assert!(first.reports.iter().all(|r| r.outcome == StageOutcome::Ran));
    let second = run(&ir, &store, None);
    assert!(
        second.reports.iter().all(|r| r.outcome == StageOutcome::Cached),
        "{:?}",
        outcomes(&second)
    );
    assert_eq!(format!("{:?}", first.artifacts), format!("{:?}", second.artifacts));
    match second.artifact("count") {
        Some(Artifact::Analysis(a)) => {
            assert_eq!(a.value, json!({"runs": ["a", "b"], "has_arch": true}))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.0.join("partial").read_dir().unwrap().any(|_| true),
        "partial states are removed once stored"
    );
}

#[test]
fn changing_a_parameter_reruns_that_stage_and_downstream_only() {
    let dir = TempDir::new("change");
    let store = Store::new(&dir.0);
    assert!(run(&experiment(7, 0.25, -1), &store, None).is_ok());
    let changed = run(&experiment(7, 0.125, -1), &store, None);
    assert_eq!(
        outcomes(&changed),
        [("data", "cached"), ("init", "cached"), ("a", "cached"), ("b", "ran"), ("count", "ran")]
    );
}

#[test]
fn an_interrupted_training_resumes_and_matches_an_uninterrupted_run() {
    let whole_dir = TempDir::new("whole");
    let whole = run(&experiment(10, 0.25, -1), &Store::new(&whole_dir.0), None);
    assert!(whole.is_ok());

    let dir = TempDir::new("resume");
    let store = Store::new(&dir.0);
    let cut = run(&experiment(10, 0.25, -1), &store, Some(4));
    let err = cut.error.as_ref().expect("interrupted").to_string();
    assert!(err.contains("stage `a`") && err.contains("interrupted at step 4"), "{err}");
    assert_eq!(
        outcomes(&cut),
        [
            ("data", "ran"),
            ("init", "ran"),
            ("a", "interrupted"),
            ("b", "not run"),
            ("count", "not run")
        ]
    );
    assert_eq!(cut.interrupted(), [("a", 4)]);
    let p =
        plan(&experiment(10, 0.25, -1), &registry(), Some(&store), &Runtime::default()).unwrap();
    assert_eq!(p.stage("a").unwrap().resume_from, Some(4));
    assert!(p.render().contains("will resume at step 4"));

    let resumed = run(&experiment(10, 0.25, -1), &store, None);
    assert!(resumed.is_ok(), "{:?}", resumed.error);
    assert_eq!(resumed.reports[2].outcome, StageOutcome::Resumed { from_step: 4 });
    for arm in ["a", "b"] {
        assert_eq!(final_w(&resumed, arm), final_w(&whole, arm));
        let (Some(Artifact::Run(x)), Some(Artifact::Run(y))) =
            (resumed.artifact(arm), whole.artifact(arm))
        else {
            panic!()
        };
        assert_eq!(x.records, y.records);
        assert_eq!(x.summary, y.summary);
    }
}

/// A stop requested before anything starts runs nothing and says why.
#[test]
fn a_stop_before_the_start_runs_nothing() {
    let dir = TempDir::new("stopped");
    let store = Store::new(&dir.0);
    let r = registry();
    let ir = experiment(10, 0.25, -1);
    let p = plan(&ir, &r, Some(&store), &Runtime::default()).unwrap();
    let options = ExecOptions::default();
    options.runtime.stop.request("SIGINT");
    let e = execute(&p, &r, &store, &options, &mut NoEvents);
    assert!(e.stopped && !e.is_ok());
    assert!(e.reports.iter().all(|r| r.outcome == StageOutcome::NotRun));
    let why = e.reports[0].error.as_deref().unwrap();
    assert_eq!(why, "the run was stopped before it started");
    assert!(store.objects().unwrap().is_empty());
}

#[test]
fn a_panicking_stage_fails_alone_and_keeps_what_finished() {
    let dir = TempDir::new("panic");
    let store = Store::new(&dir.0);
    let failed = run(&experiment(5, 0.25, 2), &store, None);
    let err = failed.error.as_ref().unwrap();
    assert!(
        matches!(err, Error::Stage { stage, source } if stage == "b" && matches!(**source, Error::Panic { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("boom at step 2"), "{err}");
    assert_eq!(
        outcomes(&failed),
        [("data", "ran"), ("init", "ran"), ("a", "ran"), ("b", "failed"), ("count", "not run")]
    );
    assert_eq!(failed.reports[3].error.as_deref(), Some(err.to_string().as_str()));
    // The fixed experiment reuses the three finished stages.
    let fixed = run(&experiment(5, 0.25, -1), &store, None);
    assert_eq!(
        outcomes(&fixed),
        [("data", "cached"), ("init", "cached"), ("a", "cached"), ("b", "ran"), ("count", "ran")]
    );
}

#[test]
fn a_failing_stage_stops_only_what_needs_it() {
    let dir = TempDir::new("keep-going");
    let store = Store::new(&dir.0);
    let mut ir = experiment(5, 0.25, -1);
    ir.stages[2].params.insert("panic_at".into(), json!(2));
    let failed = run(&ir, &store, None);
    // `b` does not need `a`, so it still trains; `count` needs both and is not run.
    assert_eq!(
        outcomes(&failed),
        [("data", "ran"), ("init", "ran"), ("a", "failed"), ("b", "ran"), ("count", "not run")]
    );
    assert!(
        matches!(&failed.error, Some(Error::Stage { stage, .. }) if stage == "a"),
        "{:?}",
        failed.error
    );
    assert_eq!(failed.failures().len(), 1);
    assert_eq!(failed.reports[4].error.as_deref(), Some("needs the result of `a`, which failed"));
    assert!(failed.artifact("b").is_some(), "the independent arm's result is kept");
}

#[test]
fn a_corrupt_object_is_an_error_that_names_it() {
    let dir = TempDir::new("corrupt");
    let store = Store::new(&dir.0);
    let ir = experiment(3, 0.25, -1);
    let first = run(&ir, &store, None);
    let key = &first.reports[1].key;
    std::fs::write(store.object_dir(key).join("model.safetensors"), b"truncated").unwrap();
    let again = run(&ir, &store, None);
    let err = again.error.unwrap().to_string();
    assert!(
        err.contains("stage `init`") && err.contains("corrupt") && err.contains(key.as_str()),
        "{err}"
    );
    assert!(store.object_dir(key).join("model.safetensors").exists());
}

#[test]
fn weights_are_selected_by_at_and_to() {
    let dir = TempDir::new("select");
    let e = run(&experiment(3, 0.25, -1), &Store::new(&dir.0), None);
    let Some(Artifact::Run(r)) = e.artifact("a") else { panic!() };
    let mut r = r.as_ref().clone();
    r.checkpoints.insert(2, r.final_params.clone());
    assert_eq!(r.weights_at("final", "at").unwrap().1, Some(3));
    assert_eq!(r.weights_at("init", "at").unwrap().0, &r.init.params);
    assert_eq!(r.weights_at("0", "at").unwrap().1, None);
    assert_eq!(r.weights_at("2", "at").unwrap().1, Some(2));
    let err = r.weights_at("5", "at").unwrap_err().to_string();
    assert!(err.contains("no checkpoint at step 5") && err.contains("saved steps: 2"), "{err}");
    assert!(r.weights_at("later", "to").unwrap_err().to_string().contains("`later` is not"));
}

/// Scores weights by magnitude.
struct Abs;
impl ticketlab_api::plugin::PrunerPlugin for Abs {
    fn score(
        &self,
        _params: &Params,
        ctx: &ticketlab_api::plugin::PruneContext<'_>,
    ) -> Result<ticketlab_api::plugin::Scores> {
        let scores = ctx
            .mask
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    HostTensor::new(
                        ctx.params[n].shape.clone(),
                        ctx.params[n].data.iter().map(|v| v.abs()).collect(),
                    ),
                )
            })
            .collect();
        Ok(ticketlab_api::plugin::Scores { scores, keep_per_layer: None })
    }
}

fn prune_params(rate: f64, at: &str) -> Value {
    json!({"rate": rate, "scope": "global", "at": at, "schedule": "exponential", "on_collapse": "warn"})
}

#[test]
fn prune_rewind_and_retrain_a_ticket() {
    let dir = TempDir::new("ticket");
    let store = Store::new(&dir.0);
    let mut r = registry();
    r.insert(entry(PluginKind::Pruner, "abs", PluginInstance::Pruner(Arc::new(Abs)))).unwrap();
    let mut ir = experiment(4, 0.25, -1);
    ir.stages.truncate(3);
    let train = json!({"steps": 4, "lr": 0.25, "resume_every": 0, "panic_at": -1});
    ir.stages.extend([
        stage(
            "mask",
            StageKind::Prune,
            "abs",
            prune_params(0.5, "final"),
            &[("from", &["a"]), ("data", &["data"])],
        ),
        StageIr {
            plugin: None,
            ..stage(
                "ticket",
                StageKind::Rewind,
                "",
                json!({"to": "init", "mode": "rewind"}),
                &[("from", &["a"]), ("mask", &["mask"])],
            )
        },
        stage(
            "t2",
            StageKind::Train,
            "adder",
            train,
            &[("model", &["ticket"]), ("data", &["data"])],
        ),
        stage(
            "again",
            StageKind::Prune,
            "abs",
            prune_params(0.75, "init"),
            &[("from", &["t2"]), ("data", &["data"])],
        ),
    ]);
    let p = plan(&ir, &r, Some(&store), &Runtime::default()).unwrap();
    let e = execute(&p, &r, &store, &ExecOptions::default(), &mut NoEvents);
    assert!(e.is_ok(), "{}", e.error.unwrap());
    let (
        Some(Artifact::Run(a)),
        Some(Artifact::Mask(m)),
        Some(Artifact::Model(t)),
        Some(Artifact::Mask(m2)),
    ) = (e.artifact("a"), e.artifact("mask"), e.artifact("ticket"), e.artifact("again"))
    else {
        panic!("{:?}", e.artifacts.keys())
    };
    assert_eq!((m.report.kept, m.report.total, m.scored_at), (2, 4, Some(4)));
    // The two largest final weights are kept.
    let fin = &a.final_params["w"].data;
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|&i, &j| fin[j].abs().total_cmp(&fin[i].abs()));
    for (i, k) in m.masks["w"].data.iter().enumerate() {
        assert_eq!(*k == 1.0, order[..2].contains(&i), "weight {i}");
    }
    // The ticket is the initialisation times the mask, and carries the mask.
    let expected: Vec<f32> =
        a.init.params["w"].data.iter().zip(&m.masks["w"].data).map(|(w, k)| w * k).collect();
    assert_eq!(t.params["w"].data, expected);
    assert_eq!(t.mask.as_ref(), Some(&m.masks));
    assert_eq!(t.origin, "rewind of `a` to init with mask `mask`");
    // Pruning the ticket's run again starts from its mask: the new mask is inside the old one.
    assert_eq!(m2.report.kept, 1);
    assert!(m2.masks["w"].data.iter().zip(&m.masks["w"].data).all(|(new, old)| new <= old));
    assert_eq!(m2.scored_at, None);
}

/// [`Abs`], declared as scoring from the weights alone.
struct AbsNoData;
impl ticketlab_api::plugin::PrunerPlugin for AbsNoData {
    fn score(
        &self,
        params: &Params,
        ctx: &ticketlab_api::plugin::PruneContext<'_>,
    ) -> Result<ticketlab_api::plugin::Scores> {
        assert!(ctx.data.is_none(), "no dataset is connected");
        Abs.score(params, ctx)
    }
    fn needs_data(&self, _params: &Params) -> bool {
        false
    }
}

/// A prune stage connects `data` only for a pruner that scores with data: without it, the
/// network is rebuilt for the dataset upstream and the pruner gets none; a pruner that needs
/// data and gets none fails naming the input.
#[test]
fn a_prune_stage_without_data_passes_the_pruner_none() {
    let dir = TempDir::new("nodata");
    let store = Store::new(&dir.0);
    let mut r = registry();
    r.insert(entry(PluginKind::Pruner, "abs", PluginInstance::Pruner(Arc::new(Abs)))).unwrap();
    let nodata = PluginInstance::Pruner(Arc::new(AbsNoData));
    r.insert(entry(PluginKind::Pruner, "abs_nodata", nodata)).unwrap();
    let mut ir = experiment(4, 0.25, -1);
    ir.stages.truncate(3);
    let with = &[("from", &["a"][..]), ("data", &["data"][..])];
    ir.stages.extend([
        stage("written", StageKind::Prune, "abs", prune_params(0.5, "final"), with),
        stage(
            "bare",
            StageKind::Prune,
            "abs_nodata",
            prune_params(0.5, "final"),
            &[("from", &["a"])],
        ),
    ]);
    let p = plan(&ir, &r, Some(&store), &Runtime::default()).unwrap();
    let e = execute(&p, &r, &store, &ExecOptions::default(), &mut NoEvents);
    assert!(e.is_ok(), "{}", e.error.unwrap());
    let (Some(Artifact::Mask(written)), Some(Artifact::Mask(bare))) =
        (e.artifact("written"), e.artifact("bare"))
    else {
        panic!("{:?}", e.artifacts.keys())
    };
    assert_eq!(bare.masks, written.masks);
    // The same stage with a pruner that needs data.
    ir.stages.last_mut().unwrap().plugin = Some("abs".into());
    let p = plan(&ir, &r, Some(&store), &Runtime::default()).unwrap();
    let e = execute(&p, &r, &store, &ExecOptions::default(), &mut NoEvents);
    let err = e.error.expect("refused").to_string();
    assert!(err.contains("pruner `abs` scores with data: connect a dataset to `data`"), "{err}");
}

/// The adder, batching every arm: records the kernel threads each batch was given.
struct Batcher(Arc<std::sync::Mutex<Vec<(usize, usize)>>>);
impl TrainerPlugin for Batcher {
    fn train(&self, params: &Params, job: TrainJob<'_>) -> Result<RunArtifact> {
        Trainer.train(params, job)
    }
    fn batch_key(&self, _params: &Params) -> Option<Params> {
        Some(Params::default())
    }
    fn uses_seed(&self, _params: &Params) -> bool {
        false
    }
    fn train_arms(&self, arms: Vec<ArmJob<'_>>) -> Vec<Result<RunArtifact>> {
        self.0.lock().unwrap().push((arms.len(), kernels::threads()));
        arms.into_iter().map(|arm| self.train(arm.params, arm.job)).collect()
    }
}

/// Registers a [`Batcher`] as `batcher`: the batches it will be given, as (arms, threads).
fn register_batcher(r: &mut Registry) -> Arc<std::sync::Mutex<Vec<(usize, usize)>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let batcher = PluginInstance::Trainer(Arc::new(Batcher(seen.clone())));
    r.insert(entry(PluginKind::Trainer, "batcher", batcher)).unwrap();
    seen
}

/// Runs `ir` with `jobs` workers of `threads` kernel threads (`--threads`), which must succeed.
fn execute_with(
    ir: &ExperimentIr,
    r: &Registry,
    store: &Store,
    jobs: usize,
    threads: usize,
) -> Execution {
    let p = plan(ir, r, Some(store), &Runtime::default()).unwrap();
    let runtime = Runtime { threads, ..Runtime::default() };
    let options = ExecOptions { jobs, runtime, ..ExecOptions::default() };
    let e = execute(&p, r, store, &options, &mut NoEvents);
    assert!(e.is_ok(), "{}", e.error.as_ref().unwrap());
    e
}

#[test]
fn a_batch_trains_over_the_threads_of_every_free_worker() {
    for (jobs, threads, given) in [(1, 1, 1), (2, 1, 2), (3, 1, 2), (2, 2, 2), (1, 3, 3)] {
        let dir = TempDir::new(&format!("batch-workers-{jobs}-{threads}"));
        let store = Store::new(&dir.0);
        let mut r = registry();
        let seen = register_batcher(&mut r);
        let mut ir = experiment(5, 0.25, -1);
        ir.stages.iter_mut().filter(|s| s.kind == StageKind::Train).for_each(|s| {
            s.plugin = Some("batcher".into());
        });
        let e = execute_with(&ir, &r, &store, jobs, threads);
        // Two arms: as many workers as are free and the arms fill, each with `threads`.
        assert_eq!(*seen.lock().unwrap(), [(2, given)], "jobs {jobs}, threads {threads}");
        assert_eq!(final_w(&e, "b"), final_w(&run(&experiment(5, 0.25, -1), &store, None), "b"));
    }
}

/// Prunes as [`Abs`] does, after a pause: a stage that keeps a worker busy without training.
struct SlowAbs(std::time::Duration);
impl ticketlab_api::plugin::PrunerPlugin for SlowAbs {
    fn score(
        &self,
        params: &Params,
        ctx: &ticketlab_api::plugin::PruneContext<'_>,
    ) -> Result<ticketlab_api::plugin::Scores> {
        std::thread::sleep(self.0);
        Abs.score(params, ctx)
    }
}

/// Two batched arms whose inputs come from prunes of `pause_ms` each (in plan order: the first
/// arm's, the second arm's, then one nobody trains on), at `jobs` workers of one thread: the
/// batches the trainer was given, as (arms, threads).
fn batches_after_prunes(pause_ms: [u64; 3], jobs: usize) -> Vec<(usize, usize)> {
    let dir = TempDir::new(&format!("batch-held-{jobs}"));
    let store = Store::new(&dir.0);
    let mut r = registry();
    let seen = register_batcher(&mut r);
    let mut ir = experiment(4, 0.25, -1);
    ir.stages.truncate(3);
    let names = ["first", "second", "busy"];
    for (name, ms) in names.iter().zip(pause_ms) {
        let pruner = SlowAbs(std::time::Duration::from_millis(ms));
        let plugin = format!("pause_{name}");
        r.insert(entry(PluginKind::Pruner, &plugin, PluginInstance::Pruner(Arc::new(pruner))))
            .unwrap();
        let inputs: &[(&str, &[&str])] = &[("from", &["a"]), ("data", &["data"])];
        ir.stages.push(stage(
            &format!("mask_{name}"),
            StageKind::Prune,
            &plugin,
            prune_params(0.5, "final"),
            inputs,
        ));
    }
    for name in &names[..2] {
        let (mask, ticket) = (format!("mask_{name}"), format!("ticket_{name}"));
        ir.stages.push(StageIr {
            plugin: None,
            ..stage(
                &ticket,
                StageKind::Rewind,
                "",
                json!({"to": "init", "mode": "rewind"}),
                &[("from", &["a"]), ("mask", &[mask.as_str()])],
            )
        });
    }
    for name in &names[..2] {
        let ticket = format!("ticket_{name}");
        ir.stages.push(stage(
            &format!("train_{name}"),
            StageKind::Train,
            "batcher",
            json!({"steps": 4, "lr": 0.25, "resume_every": 0, "panic_at": -1}),
            &[("model", &[ticket.as_str()]), ("data", &["data"])],
        ));
    }
    execute_with(&ir, &r, &store, jobs, 1);
    seen.lock().unwrap().clone()
}

#[test]
fn a_batch_member_ready_first_waits_for_the_batch() {
    // The second arm's ticket is ready long before the first's: it must not train alone.
    assert_eq!(batches_after_prunes([400, 0, 1500], 3), [(2, 2)]);
}

#[test]
fn a_batch_waits_for_workers_busy_with_stages_that_do_not_train() {
    // When both tickets are ready, the other worker is still pruning: the batch waits for it
    // rather than training both arms on one worker.
    assert_eq!(batches_after_prunes([0, 0, 600], 2), [(2, 2)]);
}
