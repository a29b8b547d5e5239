//! Batched arms: training stages of one shape trained together in one compiled graph give each
//! arm the numbers it gets alone, fail alone, and resume after the process is killed.

use std::path::Path;

use crate::cli::{kill_once_states_are_saved, root, stderr, stdout, ticketlab, with};

/// `--set` arguments of a short quickstart, with `extra` overrides.
fn quickstart(extra: &[&str]) -> Vec<String> {
    ["dense.steps=200", "dense.eval_every=25", "ticket_train.eval_every=25"]
        .iter()
        .chain(extra)
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect()
}

/// Each evaluation of `arm` in the run directory `dir`: its step and measurements (the columns
/// after the swept values, which differ between a sweep and a single run).
fn evaluations(dir: &Path, arm: &str) -> Vec<String> {
    let metrics = read(dir, "metrics.csv");
    let rows = metrics.lines().filter(|l| l.split(',').next() == Some(arm));
    rows.map(|l| l.split(',').rev().take(7).collect::<Vec<_>>().join(",")).collect()
}

fn file() -> String {
    root().join("experiments/quickstart.yaml").to_str().unwrap().to_string()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// Four arms with other masks and learning rates, batched over two threads, against each
/// trained alone at one thread: the plan shows one batch, and every arm's metrics and summary
/// are the same bits.
#[test]
fn batched_arms_get_the_numbers_they_get_alone() {
    let file = file();
    let mut args = quickstart(&["ticket_train.steps=150"]);
    args.extend(
        ["--grid", "mask.rate=[0.4, 0.7]", "--grid", "ticket_train.lr=[0.003, 0.001]"]
            .map(String::from),
    );
    let cwd = tempfile::tempdir().unwrap();
    let plan = ticketlab(&with(&["plan", &file, "--store", "a"], &args), cwd.path());
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(stdout(&plan).contains("4 arms training in 1 batch"), "{}", stdout(&plan));
    let run = |batch: &str, threads: &str, out: &str| {
        let base = [
            "run",
            &file,
            "--out",
            out,
            "--store",
            out,
            "--quiet",
            "--jobs",
            "1",
            "--threads",
            threads,
            "--batch-arms",
            batch,
        ];
        let o = ticketlab(&with(&base, &args), cwd.path());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        cwd.path().join(out)
    };
    let (together, alone) = (run("on", "2", "on"), run("off", "1", "off"));
    assert_eq!(read(&together, "metrics.csv"), read(&alone, "metrics.csv"));
    assert_eq!(read(&together, "summary.csv"), read(&alone, "summary.csv"));
    let arms = read(&together, "metrics.csv");
    // Arm names with a comma are quoted.
    let tickets = arms.lines().filter(|l| l.starts_with("\"ticket_train[")).count();
    assert_eq!(tickets, 4 * 7, "four arms evaluated at steps 0, 25, ..., 150");
}

/// An arm whose learning rate makes it diverge fails with the divergence error, alone: the
/// other arm of its batch finishes with the numbers it gets alone.
#[test]
fn an_arm_that_diverges_in_a_batch_fails_alone() {
    let file = file();
    let mut args = quickstart(&["ticket_train.steps=100"]);
    args.extend(["--grid", "ticket_train.lr=[0.003, 1e30]"].map(String::from));
    let cwd = tempfile::tempdir().unwrap();
    let batched = ticketlab(
        &with(&["run", &file, "--out", "on", "--store", "on", "--jobs", "1"], &args),
        cwd.path(),
    );
    assert_eq!(batched.status.code(), Some(1), "{}", stderr(&batched));
    let message = stderr(&batched) + &stdout(&batched);
    assert!(message.contains("stage `ticket_train[ticket_train.lr=1e+30]` failed"), "{message}");
    assert!(message.contains("training diverged"), "{message}");
    let single = quickstart(&["ticket_train.steps=100", "ticket_train.lr=0.003"]);
    let alone =
        ticketlab(&with(&["run", &file, "--out", "off", "--store", "off"], &single), cwd.path());
    assert_eq!(alone.status.code(), Some(0), "{}", stderr(&alone));
    let kept = evaluations(&cwd.path().join("on"), "ticket_train[ticket_train.lr=0.003]");
    assert_eq!(kept.len(), 5, "the kept arm is evaluated at steps 0, 25, ..., 100");
    assert_eq!(kept, evaluations(&cwd.path().join("off"), "ticket_train"));
}

/// A batch killed with SIGKILL while it trains resumes every arm from its saved state and ends
/// with the summary of a run that was never interrupted.
#[test]
fn a_killed_batch_resumes_and_ends_like_an_uninterrupted_one() {
    let file = file();
    let mut args = quickstart(&[
        "dense.resume_every=0",
        "ticket_train.steps=1500",
        "ticket_train.resume_every=100",
    ]);
    args.extend(["--grid", "mask.rate=[0.4, 0.7]"].map(String::from));
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = ticketlab(
        &with(&["run", &file, "--out", "run", "--quiet", "--jobs", "1"], &args),
        whole_dir.path(),
    );
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));

    let cwd = tempfile::tempdir().unwrap();
    // Both arms have saved a state once two are stored.
    let killed = with(&["run", &file, "--out", "killed", "--quiet", "--jobs", "1"], &args);
    kill_once_states_are_saved(&killed, cwd.path(), 2);
    let rest = ticketlab(&with(&["run", &file, "--out", "run"], &args), cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert!(stdout(&rest).contains("2 resumed"), "{}", stdout(&rest));
    assert_eq!(
        read(&cwd.path().join("run"), "summary.json"),
        read(&whole_dir.path().join("run"), "summary.json")
    );
}
