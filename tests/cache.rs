//! The store and executor end to end with the real plugins: caching, invalidation,
//! resumption after an interruption, and the testing API's determinism.

use std::path::PathBuf;

use ticketlab_api::artifact::Artifact;
use ticketlab_api::ir::ExperimentIr;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::runtime::Runtime;
use ticketlab_engine::{ExecOptions, Execution, NoEvents, StageOutcome, Store, execute, plan};
use ticketlab_plugins as _;
use ticketlab_testing::{SnapshotOptions, snapshot};

/// Shrinks the quickstart so a whole pipeline takes a few seconds.
pub const TINY: &[&str] = &[
    "dense.steps=60",
    "dense.eval_every=20",
    "dense.resume_every=20",
    "ticket_train.steps=40",
    "ticket_train.eval_every=20",
];

pub fn quickstart() -> PathBuf {
    crate::cli::root().join("experiments/quickstart.yaml")
}

/// The checked quickstart with `TINY` and `extra` overrides.
pub fn load(extra: &[&str]) -> (Registry, ExperimentIr) {
    let registry = Registry::builtin().expect("built-in registry");
    let overrides: Vec<String> = TINY.iter().chain(extra).map(|s| s.to_string()).collect();
    let path = quickstart();
    let text = std::fs::read(&path).expect("quickstart exists");
    let ir = ticketlab_dsl::load_source(&path.display().to_string(), &text, &registry, &overrides)
        .unwrap_or_else(|d| panic!("{}", d.render()));
    (registry, ir)
}

fn run(extra: &[&str], store: &Store, interrupt: Option<u64>) -> Execution {
    let (registry, ir) = load(extra);
    let p = plan(&ir, &registry, Some(store), &Runtime::default()).expect("plan");
    let options = ExecOptions {
        runtime: Runtime {
            base_dir: quickstart().parent().unwrap().to_path_buf(),
            ..Runtime::default()
        },
        interrupt_after_steps: interrupt,
        jobs: 1,
        ..ExecOptions::default()
    };
    execute(&p, &registry, store, &options, &mut NoEvents)
}

fn outcomes(e: &Execution) -> Vec<(String, &'static str)> {
    e.reports.iter().map(|r| (r.name.clone(), r.outcome.label())).collect()
}

fn summaries(e: &Execution) -> Vec<(String, String)> {
    e.artifacts
        .iter()
        .filter_map(|(n, a)| match a {
            Artifact::Run(r) => Some((n.clone(), format!("{:?}", r.summary))),
            _ => None,
        })
        .collect()
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path().join("store"));
    (dir, store)
}

#[test]
fn running_the_quickstart_twice_runs_nothing_the_second_time() {
    let (_dir, store) = temp_store();
    let first = run(&[], &store, None);
    assert!(first.is_ok(), "{}", first.error.as_ref().unwrap());
    assert!(first.reports.iter().all(|r| r.outcome == StageOutcome::Ran), "{:?}", outcomes(&first));
    let second = run(&[], &store, None);
    assert!(second.is_ok(), "{}", second.error.as_ref().unwrap());
    assert!(
        second.reports.iter().all(|r| r.outcome == StageOutcome::Cached),
        "{:?}",
        outcomes(&second)
    );
    assert_eq!(
        format!("{:?}", first.artifacts),
        format!("{:?}", second.artifacts),
        "cached results equal fresh ones bit for bit"
    );
}

#[test]
fn changing_one_parameter_reruns_only_that_stage_and_downstream() {
    let (_dir, store) = temp_store();
    assert!(run(&[], &store, None).is_ok());
    let changed = run(&["mask.rate=0.5"], &store, None);
    assert!(changed.is_ok(), "{}", changed.error.as_ref().unwrap());
    let (_, ir) = load(&["mask.rate=0.5"]);
    // Everything reachable from `mask` reruns; everything else is reused.
    let mut downstream = vec!["mask".to_string()];
    for s in &ir.stages {
        if s.inputs.values().flatten().any(|p| downstream.contains(p)) {
            downstream.push(s.name.clone());
        }
    }
    for (name, outcome) in outcomes(&changed) {
        let expected = if downstream.contains(&name) { "ran" } else { "cached" };
        assert_eq!(outcome, expected, "stage `{name}`");
    }
    assert!(downstream.len() < ir.stages.len() && downstream.contains(&"ticket_train".to_string()));
}

#[test]
fn an_interrupted_run_resumes_and_ends_like_an_uninterrupted_one() {
    let (_a, whole_store) = temp_store();
    let whole = run(&[], &whole_store, None);
    assert!(whole.is_ok(), "{}", whole.error.as_ref().unwrap());

    let (_b, store) = temp_store();
    let cut = run(&[], &store, Some(20));
    let err = cut.error.as_ref().expect("the run is interrupted").to_string();
    assert!(err.contains("stage `dense`") && err.contains("interrupted at step 20"), "{err}");
    let resumed = run(&[], &store, None);
    assert!(resumed.is_ok(), "{}", resumed.error.as_ref().unwrap());
    let dense = resumed.reports.iter().find(|r| r.name == "dense").unwrap();
    assert_eq!(dense.outcome, StageOutcome::Resumed { from_step: 20 });
    assert_eq!(summaries(&resumed), summaries(&whole));
    for arm in ["dense", "ticket_train"] {
        let (Some(Artifact::Run(x)), Some(Artifact::Run(y))) =
            (resumed.artifact(arm), whole.artifact(arm))
        else {
            panic!("{arm} is not a run")
        };
        assert_eq!(x.final_params, y.final_params, "{arm}: final weights");
        assert_eq!(x.records, y.records, "{arm}: evaluations");
    }
}

#[test]
fn snapshots_are_deterministic_and_move_only_where_expected() {
    let (registry, ir) = load(&[]);
    let runtime = Runtime { base_dir: quickstart().parent().unwrap().into(), ..Runtime::default() };
    let options = SnapshotOptions { runtime };
    let a = snapshot(&ir, &registry, &options).expect("snapshot");
    let b = snapshot(&ir, &registry, &options).expect("snapshot");
    assert_eq!(a, b);
    assert_eq!(a.to_yaml(), b.to_yaml());
    assert!(!a.runs.is_empty() && !a.masks.is_empty());
    // Pinned the way a plugin author pins theirs (see the README's "Test your plugin").
    insta::assert_yaml_snapshot!("tiny_quickstart", a);

    // A pruner parameter changes the mask and everything downstream of it, nothing else.
    let (registry, changed_ir) = load(&["mask.rate=0.5"]);
    let c = snapshot(&changed_ir, &registry, &options).expect("snapshot");
    assert_eq!(c.runs["dense"], a.runs["dense"]);
    assert_ne!(c.masks["mask"], a.masks["mask"]);
    assert_ne!(c.runs["ticket_train"], a.runs["ticket_train"]);
    for (x, y) in a.stages.iter().zip(&c.stages) {
        let upstream_of_mask = ["data", "init", "dense"].contains(&x.name.as_str());
        assert_eq!(x == y, upstream_of_mask, "stage `{}`", x.name);
    }
}

/// The cache keys of the checked quickstart with `extra` overrides, by stage.
fn keys(extra: &[&str]) -> Vec<(String, String)> {
    let (registry, ir) = load(extra);
    let plan = plan(&ir, &registry, None, &Runtime::default()).expect("the quickstart plans");
    plan.stages.iter().map(|ps| (ps.stage.name.clone(), ps.key.to_string())).collect()
}

#[test]
fn parameters_added_later_keep_earlier_keys_at_their_defaults_and_change_them_when_set() {
    let plain = keys(&[]);
    // Written at their defaults, the later parameters change no key: results stored before
    // they existed are still found.
    let defaults = keys(&[
        "init.weights=''",
        "init.weights_prefix=''",
        "dense.stop={when: never}",
        "ticket_train.stop={when: never, patience: 0}",
    ]);
    assert_eq!(defaults, plain);
    let set = keys(&["dense.stop={when: generalised, patience: 100}"]);
    let changed: Vec<&str> =
        set.iter().zip(&plain).filter(|(a, b)| a != b).map(|(a, _)| a.0.as_str()).collect();
    assert!(changed.contains(&"dense") && !changed.contains(&"init"), "{changed:?}");
}
