//! Sparse training end to end: gradual magnitude pruning (`prune_schedule`, Zhu and Gupta 2017)
//! leaves exactly the scheduled count of weights at each update, removed weights stay 0; dynamic
//! sparse training (`dynamic`, SET and RigL) keeps every layer's count while the mask moves; and
//! runs stopped in the middle resume to the same numbers.

use ticketlab_api::artifact::{Artifact, RunArtifact};
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::runtime::Runtime;
use ticketlab_api::tensor::NamedTensors;
use ticketlab_engine::{ExecOptions, Store, execute, plan};

const SETTINGS: &[&str] = &[
    "dense.steps=160",
    "dense.eval_every=20",
    "dense.resume_every=20",
    "dense.checkpoint_steps=[30, 50, 90, 130]",
    "dense.prune_schedule={start: 20, end: 100, every: 20, final_rate: 0.8}",
    "ticket_train.steps=20",
    "ticket_train.eval_every=20",
];

/// The dense run of the quickstart under the schedule above, stopped at `interrupt` if given.
fn dense(store: &Store, interrupt: Option<u64>) -> Option<RunArtifact> {
    train(SETTINGS, "dense", store, interrupt)
}

/// The run of `stage` in the quickstart with `settings`, stopped at `interrupt` if given.
fn train(
    settings: &[&str],
    stage: &str,
    store: &Store,
    interrupt: Option<u64>,
) -> Option<RunArtifact> {
    let registry = Registry::builtin().expect("built-in registry");
    let path = crate::cache::quickstart();
    let text = std::fs::read(&path).unwrap();
    let overrides: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    let ir = ticketlab_dsl::load_source(&path.display().to_string(), &text, &registry, &overrides)
        .unwrap_or_else(|d| panic!("{}", d.render()));
    let p = plan(&ir, &registry, Some(store), &Runtime::default()).unwrap();
    let options = ExecOptions {
        runtime: Runtime { base_dir: path.parent().unwrap().into(), ..Runtime::default() },
        interrupt_after_steps: interrupt,
        jobs: 1,
        ..ExecOptions::default()
    };
    let exec = execute(&p, &registry, store, &options, &mut ticketlab_engine::NoEvents);
    match exec.artifacts.get(stage) {
        Some(Artifact::Run(run)) => Some(run.as_ref().clone()),
        _ => None,
    }
}

/// Nonzero prunable weights (the quickstart prunes every weight matrix).
fn kept(weights: &NamedTensors) -> usize {
    weights.values().flat_map(|t| &t.data).filter(|&&w| w != 0.0).count()
}

fn rate(t: f64) -> f64 {
    // s_t = s_f + (s_i - s_f)(1 - (t - start)/(end - start))^3
    0.8 - 0.8 * (1.0 - (t - 20.0) / 80.0).powi(3)
}

#[test]
fn each_update_keeps_the_scheduled_count_and_a_stopped_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("a"));
    let run = dense(&store, None).expect("the dense run finishes");
    let total: usize = run.init.params.values().map(|t| t.data.len()).sum();
    // A checkpoint at step c holds the weights after the last update before c.
    for (c, last_update) in [(30, 20.0), (50, 40.0), (90, 80.0), (130, 100.0)] {
        let expected = ((1.0 - rate(last_update)) * total as f64).round() as usize;
        assert_eq!(kept(&run.checkpoints[&c]), expected, "checkpoint {c}");
    }
    assert_eq!(kept(&run.final_params), ((1.0 - 0.8) * total as f64).round() as usize);
    assert!((run.summary.density - 0.2).abs() < 1.0 / total as f64, "{}", run.summary.density);
    // Weights removed at one update stay removed (exactly 0) at every later checkpoint.
    let steps: Vec<u64> = run.checkpoints.keys().copied().filter(|&c| c >= 30).collect();
    for pair in steps.windows(2) {
        let (before, after) = (&run.checkpoints[&pair[0]], &run.checkpoints[&pair[1]]);
        for (name, t) in before {
            for (i, &w) in t.data.iter().enumerate() {
                if w == 0.0 {
                    assert_eq!(after[name].data[i], 0.0, "{name}[{i}] grew back by {}", pair[1]);
                }
            }
        }
    }

    // Stopped at step 70, between updates, and resumed: the same weights bit for bit.
    let other = Store::new(dir.path().join("b"));
    assert!(dense(&other, Some(70)).is_none(), "stopped at 70");
    let resumed = dense(&other, None).expect("the resumed run finishes");
    assert_eq!(resumed.final_params, run.final_params);
    assert_eq!(resumed.records, run.records);
}

fn dynamic(method: &str) -> Vec<String> {
    [
        "dense.steps=60",
        "dense.eval_every=20",
        "ticket_train.steps=100",
        "ticket_train.eval_every=20",
        "ticket_train.resume_every=20",
        "ticket_train.checkpoint_steps=[10, 30, 50, 70, 90]",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("ticket_train.dynamic={{method: {method}, every: 20, fraction: 0.3}}")])
    .collect()
}

/// Each layer's nonzero positions.
fn support(weights: &NamedTensors) -> Vec<(String, Vec<usize>)> {
    weights
        .iter()
        .map(|(name, t)| (name.clone(), (0..t.len()).filter(|&i| t.data[i] != 0.0).collect()))
        .collect()
}

#[test]
fn set_and_rigl_move_the_mask_keeping_every_layers_count_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut finals = Vec::new();
    for method in ["set", "rigl"] {
        let settings = dynamic(method);
        let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
        let store = Store::new(dir.path().join(method));
        let run = train(&settings, "ticket_train", &store, None).expect("the ticket trains");
        let mask = run.init.mask.as_ref().expect("the ticket is masked");
        let counts: Vec<usize> =
            mask.values().map(|m| m.data.iter().filter(|&&k| k == 1.0).count()).collect();
        // Checkpoints between updates (every 20 steps): the same count in every layer, the
        // first one (step 10, no update yet) on the ticket's own mask, later ones elsewhere.
        let first = support(&run.checkpoints[&10]);
        let initial: Vec<(String, Vec<usize>)> = mask
            .iter()
            .map(|(name, m)| (name.clone(), (0..m.len()).filter(|&i| m.data[i] == 1.0).collect()))
            .collect();
        assert_eq!(first, initial, "{method}: before any update");
        for c in [30, 50, 70, 90] {
            let now = support(&run.checkpoints[&c]);
            let now_counts: Vec<usize> = now.iter().map(|(_, s)| s.len()).collect();
            assert_eq!(now_counts, counts, "{method}: layer counts at step {c}");
        }
        let moved: usize = support(&run.checkpoints[&30])
            .iter()
            .zip(&initial)
            .map(|((_, now), (_, before))| now.iter().filter(|i| !before.contains(i)).count())
            .sum();
        // One update replaces floor(0.3 n) weights of each layer (some may grow back).
        let at_most: usize = counts.iter().map(|&n| (0.3 * n as f64).floor() as usize).sum();
        assert!(moved > 0 && moved <= at_most, "{method}: {moved} of at most {at_most} moved");
        assert!(
            (run.summary.density
                - run
                    .init
                    .mask
                    .as_ref()
                    .map_or(1.0, |m| ticketlab_api::artifact::DensityReport::of(m).density))
            .abs()
                < 1e-12
        );

        // Stopped at step 50, between updates, and resumed: the same weights bit for bit.
        let other = Store::new(dir.path().join(format!("{method}-resumed")));
        assert!(train(&settings, "ticket_train", &other, Some(50)).is_none());
        let resumed = train(&settings, "ticket_train", &other, None).expect("resumed");
        assert_eq!(resumed.final_params, run.final_params, "{method}");
        finals.push(run.final_params);
    }
    assert_ne!(finals[0], finals[1], "SET and RigL grow different weights");

    // A dense model has no density to keep: refused, naming the fixes.
    let settings = ["dense.steps=40", "dense.dynamic={method: set}", "ticket_train.steps=20"];
    let store = Store::new(dir.path().join("dense"));
    let registry = Registry::builtin().unwrap();
    let path = crate::cache::quickstart();
    let text = std::fs::read(&path).unwrap();
    let overrides: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    let ir = ticketlab_dsl::load_source(&path.display().to_string(), &text, &registry, &overrides)
        .unwrap();
    let p = plan(&ir, &registry, Some(&store), &Runtime::default()).unwrap();
    let options = ExecOptions {
        jobs: 1,
        runtime: Runtime { base_dir: path.parent().unwrap().into(), ..Runtime::default() },
        ..ExecOptions::default()
    };
    let exec = execute(&p, &registry, &store, &options, &mut ticketlab_engine::NoEvents);
    let err = exec.error.expect("refused").to_string();
    assert!(err.contains("this model is dense") && err.contains("prune_schedule"), "{err}");
}
