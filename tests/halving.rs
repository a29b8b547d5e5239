//! Successive halving (`select` on a train stage): the points outside the best fraction stop at
//! each rung, the ones that go on get exactly the numbers of an unselected run, and a later run
//! with a larger `keep` resumes the cut ones from their saved states.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::cli::{root, stderr, stdout, ticketlab, with};

const RATES: [&str; 3] = ["0.3", "0.6", "0.9"];

/// The sweep's settings: three rates, 400 steps, evaluations every 50, in `store`.
fn settings(store: &str) -> Vec<String> {
    [
        "--set",
        "*.steps=400",
        "--set",
        "*.eval_every=50",
        "--grid",
        "mask.rate=[0.3, 0.6, 0.9]",
        "--store",
        store,
    ]
    .map(String::from)
    .to_vec()
}

fn sweep(cwd: &Path, out: &str, store: &str, select: Option<&str>) -> std::process::Output {
    let file = root().join("experiments/quickstart.yaml");
    let mut extra = settings(store);
    extra.extend(["--jobs", "1", "--out", out].map(String::from));
    if let Some(select) = select {
        extra.extend(["--set".to_string(), format!("ticket_train.select={select}")]);
    }
    ticketlab(&with(&["run", file.to_str().unwrap()], &extra), cwd)
}

fn arms(run: &Path) -> BTreeMap<String, Value> {
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let arms = summary["arms"].as_array().unwrap();
    arms.iter().map(|a| (a["arm"].as_str().unwrap().to_string(), a.clone())).collect()
}

/// Each arm's evaluations, by step.
fn metrics(run: &Path) -> BTreeMap<String, BTreeMap<u64, Value>> {
    let mut out: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let arm = v["arm"].as_str().unwrap().to_string();
        out.entry(arm).or_default().insert(v["step"].as_u64().unwrap(), v);
    }
    out
}

fn ticket(rate: &str) -> String {
    format!("ticket_train[mask.rate={rate}]")
}

/// The rates still racing after ranking `racing` by test accuracy at `step` (best first, ties
/// in sweep order) and keeping `kept`.
fn best(
    full: &BTreeMap<String, BTreeMap<u64, Value>>,
    racing: &[&str],
    step: u64,
    kept: usize,
) -> Vec<String> {
    let mut scored: Vec<(usize, f64)> = racing
        .iter()
        .enumerate()
        .map(|(i, r)| (i, full[&ticket(r)][&step]["test_acc"].as_f64().unwrap()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.iter().take(kept).map(|(i, _)| racing[*i].to_string()).collect()
}

#[test]
fn halving_cuts_the_worst_points_at_each_rung_and_a_larger_keep_resumes_them() {
    let cwd = tempfile::tempdir().unwrap();
    // The whole sweep, unselected, in a store of its own: what every arm does.
    let o = sweep(cwd.path(), "full", "full-store", None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let full = metrics(&cwd.path().join("full"));

    let o = sweep(cwd.path(), "halved", "store", Some("{rungs: [100, 200], keep: 0.5}"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 cut by successive halving"), "{}", stdout(&o));
    let halved = arms(&cwd.path().join("halved"));
    // Rung 100 keeps ceil(0.5 * 3) = 2 of 3 points, rung 200 ceil(0.5 * 2) = 1 of 2.
    let after_first = best(&full, &RATES, 100, 2);
    let racing: Vec<&str> = after_first.iter().map(String::as_str).collect();
    let winner = best(&full, &racing, 200, 1);
    for rate in RATES {
        let arm = &halved[&ticket(rate)];
        let (steps, stopped) = if winner.contains(&rate.to_string()) {
            (400, None)
        } else if after_first.contains(&rate.to_string()) {
            (200, Some("cut by successive halving at step 200: test_acc"))
        } else {
            (100, Some("cut by successive halving at step 100: test_acc"))
        };
        assert_eq!(arm["steps"], steps, "{rate}");
        match stopped {
            Some(text) => {
                assert!(arm["stopped"].as_str().unwrap().starts_with(text), "{rate}: {arm}")
            }
            None => assert!(arm.get("stopped").is_none_or(Value::is_null), "{rate}: {arm}"),
        }
    }
    // Every evaluation of every arm is the unselected run's, up to where the arm stopped.
    for (arm, evals) in metrics(&cwd.path().join("halved")) {
        for (step, eval) in evals {
            assert_eq!(eval, full[&arm][&step], "{arm} at {step}");
        }
    }
    // A cut copy is not stored; its saved state is.
    let file = root().join("experiments/quickstart.yaml");
    let mut args = settings("store");
    args.extend(["--set".into(), "ticket_train.select={rungs: [100, 200], keep: 0.5}".into()]);
    let plan = ticketlab(&with(&["plan", file.to_str().unwrap()], &args), cwd.path());
    assert!(
        stdout(&plan).contains("successive halving: `ticket_train` over 3 points (3 trainings), ranked by test_acc at steps 100, 200, keeping 50% at each"),
        "{}",
        stdout(&plan)
    );
    let cut_rate = RATES.iter().find(|r| !after_first.contains(&r.to_string())).unwrap();
    let line = stdout(&plan).lines().find(|l| l.contains(&ticket(cut_rate))).unwrap().to_string();
    assert!(line.ends_with("will resume at step 100"), "{line}");

    // Keeping every point resumes the cut ones: the run equals the unselected one.
    let o = sweep(cwd.path(), "all", "store", Some("{rungs: [100, 200], keep: 1.0}"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming from the state saved at step 100"), "{}", stderr(&o));
    assert_eq!(metrics(&cwd.path().join("all")), full);
}

#[test]
fn halving_is_refused_on_slurm() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let args = [
        "--grid",
        "mask.rate=[0.3, 0.6]",
        "--set",
        "ticket_train.select={rungs: [100]}",
        "--on",
        "slurm",
        "--dry-run",
    ]
    .map(String::from);
    let o = ticketlab(&with(&["run", file.to_str().unwrap()], &args), cwd.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("runs on this machine only"), "{}", stderr(&o));
}
