//! Stop rules on a train stage: an arm ends when its answer is known, every step before the
//! stop is the step it takes without the rule, and a batch goes on without the arms that left.

use std::path::Path;

use crate::cli::{root, stderr, ticketlab};

/// `summary.csv` of the quickstart's dense model at two learning rates (batched unless
/// `batch_arms` is "off"), with `extra` arguments, as (arm, column) -> cell.
fn dense_rows(cwd: &Path, out: &str, batch_arms: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let file = root().join("experiments/quickstart.yaml");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--quiet",
        "--out",
        out,
        "--store",
        out,
        "--grid",
        "dense.lr=[0.003, 0.002]",
        "--set",
        "dense.steps=2400",
        "--set",
        "ticket_train.steps=20",
        "--batch-arms",
        batch_arms,
    ];
    args.extend_from_slice(extra);
    let o = ticketlab(&args, cwd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let csv = std::fs::read_to_string(cwd.join(out).join("summary.csv")).unwrap();
    let mut lines = csv.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let keep = ["arm", "steps", "t_mem", "t_gen", "tau_grok", "final_test_acc", "l2", "stopped"];
    lines
        .filter(|row| row[0].starts_with("dense"))
        .map(|row| {
            keep.iter().map(|k| row[header.iter().position(|h| h == k).unwrap()].clone()).collect()
        })
        .collect()
}

#[test]
fn a_generalised_arm_stops_after_its_patience_and_its_batch_goes_on_without_it() {
    let cwd = tempfile::tempdir().unwrap();
    let rule = ["--set", "dense.stop={when: generalised, patience: 100}"];
    let stopped = dense_rows(cwd.path(), "batched", "on", &rule);
    let alone = dense_rows(cwd.path(), "alone", "off", &rule);
    let full = dense_rows(cwd.path(), "full", "on", &[]);
    // The same numbers batched (the batch shrank when the first arm stopped) and alone.
    assert_eq!(stopped, alone);
    for (with_rule, without) in stopped.iter().zip(&full) {
        let (steps, t_mem, t_gen, reason) =
            (&with_rule[1], &with_rule[2], &with_rule[3], &with_rule[7]);
        // No step before the stop changed: t_mem, t_gen and tau_grok are those without the rule.
        assert_eq!(&with_rule[..1], &without[..1]);
        assert_eq!((t_mem, t_gen, &with_rule[4]), (&without[2], &without[3], &without[4]));
        let t_gen: u64 = t_gen.parse().expect("the quickstart's dense model generalises");
        let steps: u64 = steps.parse().unwrap();
        // Evaluations are every 25 steps: the first one at least 100 steps after t_gen.
        assert_eq!(steps, t_gen + 100, "{with_rule:?}");
        assert!(
            reason.contains("generalised") && reason.contains(&format!("stopped at step {steps}")),
            "{reason}"
        );
        assert_eq!(without[1], "2400");
        assert!(without[7].is_empty());
    }
}

#[test]
fn a_misspelt_stop_field_is_refused_with_the_field_it_means() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let o = ticketlab(
        &[
            "check",
            file.to_str().unwrap(),
            "--set",
            "dense.stop={when: generalised, patiense: 100}",
        ],
        cwd.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o).replace("\n  │ ", " ");
    assert!(err.contains("did you mean `patience`"), "{err}");
}
