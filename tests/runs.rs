//! Telling runs apart: `run --tag/--note`, the overrides `ticketlab runs` shows, what `report
//! DIR1 DIR2` says differs, and `plan` without a file.

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

#[test]
fn runs_show_their_overrides_and_tags_and_a_comparison_says_what_differs() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let plain =
        ticketlab(&with(&["run", file, "--quiet", "--out", "runs/plain"], &set), cwd.path());
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    let tagged = ticketlab(
        &with(
            &[
                "run",
                file,
                "--quiet",
                "--out",
                "runs/high",
                "--set",
                "mask.rate=0.7",
                "--tag",
                "high-rate",
                "--note",
                "k = 0.7 instead of 0.6",
            ],
            &set,
        ),
        cwd.path(),
    );
    assert_eq!(tagged.status.code(), Some(0), "{}", stderr(&tagged));

    let listed = stdout(&ticketlab(&["runs"], cwd.path()));
    let line = |run: &str| listed.lines().find(|l| l.starts_with(run)).unwrap().to_string();
    assert!(listed.lines().next().unwrap().contains("overrides"), "{listed}");
    assert!(line("runs/high").contains("high-rate"), "{listed}");
    assert!(line("runs/high").contains("--set mask.rate=0.7"), "{listed}");
    assert!(line("runs/plain").contains("--set dense.steps=60"), "{listed}");
    assert!(!line("runs/plain").contains("mask.rate"), "{listed}");
    let only = stdout(&ticketlab(&["runs", "--tag", "high-rate"], cwd.path()));
    assert!(only.contains("runs/high") && !only.contains("runs/plain"), "{only}");
    assert!(only.contains("1 run directory"), "{only}");

    let report = std::fs::read_to_string(cwd.path().join("runs/high/report.md")).unwrap();
    assert!(
        report.contains("**Tag:** high-rate") && report.contains("k = 0.7 instead of 0.6"),
        "{report}"
    );

    let o = ticketlab(&["report", "runs/plain", "runs/high", "--out", "cmp"], cwd.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let compared = std::fs::read_to_string(cwd.path().join("cmp/report.md")).unwrap();
    let differs =
        compared.split("## What differs").nth(1).unwrap().split("## Arms").next().unwrap();
    assert!(differs.contains("| `mask.rate` | 0.6 | 0.7 |"), "{differs}");
    assert!(differs.contains("| `tag` | - | high-rate |"), "{differs}");
    // What is the same is not listed.
    assert!(!differs.contains("| `dense.steps`") && !differs.contains("| `backend`"), "{differs}");

    let same = ticketlab(&["report", "runs/plain", "runs/plain", "--out", "same"], cwd.path());
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    let same = std::fs::read_to_string(cwd.path().join("same/report.md")).unwrap();
    assert!(same.contains("Nothing: the same experiment"), "{same}");
}

#[test]
fn plan_without_a_file_plans_the_quickstart_as_run_runs_it() {
    let cwd = tempfile::tempdir().unwrap();
    let builtin = ticketlab(&["plan"], cwd.path());
    assert_eq!(builtin.status.code(), Some(0), "{}", stderr(&builtin));
    let file = root().join("experiments/quickstart.yaml");
    let from_file = ticketlab(&["plan", file.to_str().unwrap()], cwd.path());
    assert_eq!(stdout(&builtin), stdout(&from_file));
}
