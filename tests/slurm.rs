//! `run --on slurm`: what is refused before submitting, the script, and (against a real Slurm
//! started by tests/slurm/start.sh) a sweep run as a job array giving the local results.

use std::path::Path;

use crate::cli::{root, stderr, stdout, ticketlab, tiny, with};

const GRID: &str = "mask.rate=[0.3, 0.5, 0.7, 0.8]";

fn quickstart() -> String {
    root().join("experiments/quickstart.yaml").to_str().unwrap().to_string()
}

#[test]
fn without_sbatch_or_a_writable_store_nothing_is_submitted() {
    let cwd = tempfile::tempdir().unwrap();
    let file = quickstart();
    let set = tiny();
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(with(&["run", &file, "--on", "slurm", "--store", "shared"], &set))
        .current_dir(cwd.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("`sbatch` was not found on PATH") && err.contains("--jobs"), "{err}");
    assert!(!cwd.path().join("shared/objects").exists(), "nothing ran");

    let bad = ticketlab(
        &with(&["run", &file, "--on", "slurm", "--slurm-option", "time 2h", "--dry-run"], &set),
        cwd.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--slurm-option `time 2h`: expected KEY=VALUE"),
        "{}",
        stderr(&bad)
    );
    let local = ticketlab(&with(&["run", &file, "--dry-run"], &set), cwd.path());
    assert_eq!(local.status.code(), Some(2));
    assert!(stderr(&local).contains("go with --on slurm"), "{}", stderr(&local));
}

#[test]
fn dry_run_prints_the_array_script_and_submits_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let file = quickstart();
    let set = tiny();
    let out = ticketlab(
        &with(
            &[
                "run",
                &file,
                "--grid",
                GRID,
                "--on",
                "slurm",
                "--store",
                "shared",
                "--slurm-option",
                "partition=debug",
                "--slurm-option",
                "cpus-per-task=2",
                "--dry-run",
            ],
            &set,
        ),
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = stdout(&out);
    // The dense base, then four tickets trained as one batch: two tasks.
    for needle in [
        "#!/bin/bash",
        "#SBATCH --array=0-1",
        "is not visible on",
        "#SBATCH --partition=debug",
        "#SBATCH --cpus-per-task=2",
        "--grid 'mask.rate=[0.3, 0.5, 0.7, 0.8]'",
        "--jobs 1",
        "SLURM_CPUS_PER_TASK",
    ] {
        assert!(script.contains(needle), "{needle} missing from\n{script}");
    }
    assert!(
        script.contains(&format!("--store {}", cwd.path().join("shared").display())),
        "{script}"
    );
    assert!(!cwd.path().join("shared").exists(), "a dry run writes nothing");
    // Without batches, each ticket is a task of its own, and the tasks are told so.
    let base = ["run", &file, "--grid", GRID, "--on", "slurm", "--store", "shared", "--dry-run"];
    let off = ticketlab(&with(&[&base[..], &["--batch-arms", "off"]].concat(), &set), cwd.path());
    assert_eq!(off.status.code(), Some(0), "{}", stderr(&off));
    let script = stdout(&off);
    assert!(
        script.contains("#SBATCH --array=0-4") && script.contains("--batch-arms off"),
        "{script}"
    );
}

/// Needs a running Slurm: `eval "$(tests/slurm/start.sh)"` exports SLURM_CONF; `.ci/run` runs
/// it with `--ignored`.
#[test]
#[ignore = "needs a Slurm cluster: eval \"$(tests/slurm/start.sh)\", then cargo test --test integration slurm -- --ignored"]
fn a_sweep_on_slurm_gives_the_summary_of_a_local_serial_run() {
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "SLURM_CONF is not set: start the test cluster with eval \"$(tests/slurm/start.sh)\""
    );
    let cwd = tempfile::tempdir().unwrap();
    let file = quickstart();
    let set = tiny();
    let local = ticketlab(
        &with(
            &[
                "run",
                &file,
                "--grid",
                GRID,
                "--jobs",
                "1",
                "--store",
                "local-store",
                "--out",
                "local",
            ],
            &set,
        ),
        cwd.path(),
    );
    assert_eq!(local.status.code(), Some(0), "{}", stderr(&local));
    let slurm = ticketlab(
        &with(
            &["run", &file, "--grid", GRID, "--on", "slurm", "--store", "shared", "--out", "slurm"],
            &set,
        ),
        cwd.path(),
    );
    assert_eq!(
        slurm.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&slurm),
        stderr(&slurm)
    );
    assert!(
        stderr(&slurm).contains("stages stored"),
        "the array's progress is shown: {}",
        stderr(&slurm)
    );
    let summary =
        |dir: &str| std::fs::read_to_string(cwd.path().join(dir).join("summary.json")).unwrap();
    assert_eq!(
        summary("slurm"),
        summary("local"),
        "the array computes what a local serial run does"
    );
    assert!(
        stdout(&slurm).contains("0 ran"),
        "the submitting process only loads: {}",
        stdout(&slurm)
    );
    let logs: Vec<_> = std::fs::read_dir(cwd.path().join("shared/slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
        .collect();
    assert_eq!(logs.len(), 2, "one log per array task: the dense base, then the tickets' batch");
    // Everything is stored now: a rerun submits a one-task array that computes nothing.
    let again = ticketlab(
        &with(
            &["run", &file, "--grid", GRID, "--on", "slurm", "--store", "shared", "--out", "again"],
            &set,
        ),
        cwd.path(),
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(summary("again"), summary("local"));
    assert!(
        Path::new(&cwd.path().join("again/report.html")).is_file(),
        "the run directory is written as for a local run"
    );
}
