//! Gradual magnitude pruning during training (`prune_schedule`, Zhu and Gupta 2017) end to end:
//! each update leaves exactly the scheduled count of weights, removed weights stay 0, and a run
//! stopped in the middle of the schedule resumes to the same numbers.

use ticketlab_api::artifact::Artifact;
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
fn dense(store: &Store, interrupt: Option<u64>) -> Option<ticketlab_api::artifact::RunArtifact> {
    let registry = Registry::builtin().expect("built-in registry");
    let path = crate::cache::quickstart();
    let text = std::fs::read(&path).unwrap();
    let overrides: Vec<String> = SETTINGS.iter().map(|s| s.to_string()).collect();
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
    match exec.artifacts.get("dense") {
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
