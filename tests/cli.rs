//! The `ticketlab` binary: exit codes, the plan of the quickstart, runs against a store,
//! and snapshots across thread counts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::cache::TINY;

pub fn ticketlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("ticketlab runs")
}

/// The repository's root (the command-line package, whose tests these are, is core/cli).
pub fn root() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent().and_then(Path::parent).expect("core/cli is two levels down").to_path_buf()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--set` arguments for the tiny quickstart.
pub fn tiny() -> Vec<String> {
    TINY.iter().flat_map(|s| ["--set".to_string(), s.to_string()]).collect()
}

pub fn with<'a>(base: &[&'a str], extra: &'a [String]) -> Vec<&'a str> {
    base.iter().copied().chain(extra.iter().map(String::as_str)).collect()
}

#[test]
fn usage_errors_exit_with_2_and_help_with_0() {
    let cwd = tempfile::tempdir().unwrap();
    assert_eq!(ticketlab(&["--help"], cwd.path()).status.code(), Some(0));
    assert_eq!(ticketlab(&["frobnicate"], cwd.path()).status.code(), Some(2));
    assert_eq!(ticketlab(&["run", "--threads", "many"], cwd.path()).status.code(), Some(2));
    let missing = ticketlab(&["check", "no/such/file.yaml"], cwd.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no/such/file.yaml"), "{}", stderr(&missing));
    assert_eq!(ticketlab(&["plan", "no/such/file.yaml"], cwd.path()).status.code(), Some(2));
}

#[test]
fn check_reports_a_bad_file_with_2_and_a_good_one_with_0() {
    let cwd = tempfile::tempdir().unwrap();
    let good = ticketlab(
        &["check", root().join("experiments/quickstart.yaml").to_str().unwrap()],
        cwd.path(),
    );
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    assert!(stdout(&good).contains("ok"));
    let bad = cwd.path().join("bad.yaml");
    std::fs::write(&bad, "name: bad\nseed: 0\nstages:\n  data: { kind: dataset, uses: modulr }\n")
        .unwrap();
    let out = ticketlab(&["check", "bad.yaml"], cwd.path());
    assert_eq!(
        out.status.code(),
        Some(2),
        "a file that does not check is an input error, as for every command"
    );
    assert!(stderr(&out).contains("modular"), "suggests the closest name: {}", stderr(&out));
    // The same file is an input error for commands that would use it.
    assert_eq!(ticketlab(&["plan", "bad.yaml"], cwd.path()).status.code(), Some(2));
    let unknown = ticketlab(
        &[
            "plan",
            root().join("experiments/quickstart.yaml").to_str().unwrap(),
            "--set",
            "dense.stepz=3",
        ],
        cwd.path(),
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
}

#[test]
fn plan_of_the_quickstart() {
    let cwd = tempfile::tempdir().unwrap();
    let out = ticketlab(
        &["plan", root().join("experiments/quickstart.yaml").to_str().unwrap()],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
    assert!(!cwd.path().join(".ticketlab").exists(), "planning writes nothing");
}

#[test]
fn run_stores_every_stage_reuses_them_and_plan_shows_it() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let first = ticketlab(&with(&["run", file, "--quiet"], &set), cwd.path());
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        cwd.path().join(".ticketlab/objects").is_dir(),
        "the default store is under the working directory"
    );
    let second = ticketlab(&with(&["run", file, "--threads", "1"], &set), cwd.path());
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(stdout(&second).contains("0 ran, 0 resumed"), "{}", stdout(&second));
    let plan = ticketlab(&with(&["plan", file], &set), cwd.path());
    assert!(
        stdout(&plan)
            .lines()
            .skip(2)
            .filter(|l| l.starts_with("  "))
            .all(|l| l.trim_end().ends_with("cached")),
        "{}",
        stdout(&plan)
    );
    assert!(stdout(&plan).contains("0 to run"), "{}", stdout(&plan));
}

#[test]
fn a_failing_stage_exits_with_1_and_keeps_what_finished() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let mut set = tiny();
    // A checkpoint the dense run does not save: the prune stage fails, dense is kept.
    set.extend(["--set".to_string(), "mask.at='59'".to_string()]);
    let out = ticketlab(&with(&["run", file, "--store", "s", "--quiet"], &set), cwd.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stage `mask`") && err.contains("59"), "{err}");
    let plan = ticketlab(&with(&["plan", file, "--store", "s"], &set), cwd.path());
    let dense = stdout(&plan)
        .lines()
        .find(|l| l.trim_start().starts_with("dense "))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(dense.ends_with("cached"), "{}", stdout(&plan));
}

#[test]
fn the_snapshot_is_the_same_with_1_and_2_threads() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let one = ticketlab(&with(&["snapshot", file, "--threads", "1"], &set), cwd.path());
    let two = ticketlab(&with(&["snapshot", file, "--threads", "2"], &set), cwd.path());
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(two.status.code(), Some(0), "{}", stderr(&two));
    assert_eq!(stdout(&one), stdout(&two));
    assert!(
        stdout(&one).contains("masks:") && stdout(&one).contains("tau_grok"),
        "{}",
        stdout(&one)
    );
    assert!(!cwd.path().join(".ticketlab").exists(), "snapshots use a temporary store");
}

#[test]
fn a_sweep_gives_the_same_results_with_1_and_2_jobs() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let mut read = Vec::new();
    for jobs in ["1", "2"] {
        let (out, store) = (format!("out{jobs}"), format!("store{jobs}"));
        let run = ticketlab(
            &with(
                &[
                    "run",
                    file,
                    "--grid",
                    "mask.rate=[0.3, 0.6, 0.8]",
                    "--jobs",
                    jobs,
                    "--out",
                    &out,
                    "--store",
                    &store,
                ],
                &set,
            ),
            cwd.path(),
        );
        assert_eq!(run.status.code(), Some(0), "--jobs {jobs}: {}", stderr(&run));
        let dir = cwd.path().join(&out);
        read.push(
            ["summary.json", "metrics.jsonl"]
                .map(|f| std::fs::read_to_string(dir.join(f)).unwrap()),
        );
    }
    assert_eq!(read[0], read[1], "every file of results is the same with one job and with two");
    assert!(read[0][0].contains("mask.rate=0.8"), "{}", read[0][0]);
}

#[test]
fn an_earlier_run_is_never_overwritten_without_force_and_outputs_are_checked_first() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let first = ticketlab(&with(&["run", file, "--out", "run", "--quiet"], &set), cwd.path());
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let manifest = std::fs::read_to_string(cwd.path().join("run/manifest.json")).unwrap();
    let again = ticketlab(&with(&["run", file, "--out", "run", "--quiet"], &set), cwd.path());
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("holds an earlier run") && stderr(&again).contains("--force"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("run/manifest.json")).unwrap(),
        manifest,
        "the earlier run is untouched"
    );
    let forced =
        ticketlab(&with(&["run", file, "--out", "run", "--quiet", "--force"], &set), cwd.path());
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));

    // An --out that cannot be written is refused before any stage runs.
    std::fs::write(cwd.path().join("a-file"), "x").unwrap();
    let bad = ticketlab(
        &with(&["run", file, "--out", "a-file/run", "--store", "fresh-store"], &set),
        cwd.path(),
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("cannot write the run directory a-file/run"), "{}", stderr(&bad));
    assert!(!cwd.path().join("fresh-store/objects").exists(), "nothing ran");
    let bad_store = ticketlab(
        &with(&["run", file, "--out", "other", "--store", "a-file/store"], &set),
        cwd.path(),
    );
    assert_eq!(bad_store.status.code(), Some(2), "{}", stderr(&bad_store));
    assert!(
        stderr(&bad_store).contains("cannot write the store a-file/store"),
        "{}",
        stderr(&bad_store)
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(["plugins", "list"])
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn an_interrupted_run_resumes_from_its_saved_state() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let cut = ticketlab(&with(&["run", file, "--interrupt-after-steps", "20"], &set), cwd.path());
    assert_eq!(cut.status.code(), Some(3), "{}", stderr(&cut));
    assert!(stderr(&cut).contains("dense: state saved at step 20"), "{}", stderr(&cut));
    let plan = ticketlab(&with(&["plan", file], &set), cwd.path());
    assert!(stdout(&plan).contains("will resume at step 20"), "{}", stdout(&plan));
    let rest = ticketlab(&with(&["run", file], &set), cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert!(stdout(&rest).contains("1 resumed"), "{}", stdout(&rest));
    assert!(
        stderr(&rest).contains("resuming from the state saved at step 20"),
        "{}",
        stderr(&rest)
    );
}

/// stderr with the lines that miette wrapped joined again, so that phrases can be searched for.
fn unwrapped_stderr(o: &Output) -> String {
    stderr(o).replace("\n  │ ", " ").replace("\n        ", " ")
}

#[test]
fn sweep_flags_expand_the_plan_like_a_sweep_in_the_file() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let out =
        ticketlab(&["plan", file, "--grid", "mask.rate=[0.3, 0.6]", "--seeds", "2"], cwd.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout(&out);
    // data, init and dense once per seed; the four stages after the mask per rate and seed.
    assert!(plan.starts_with("experiment quickstart (22 stages"), "{plan}");
    for stage in ["dense@seed1", "mask[mask.rate=0.3]@seed0", "compare[mask.rate=0.6]@seed1"] {
        assert!(
            plan.lines().any(|l| l.trim_start().starts_with(&format!("{stage} "))),
            "no {stage} in:\n{plan}"
        );
    }
    // --zip pairs values; a flag on a swept parameter replaces the file's axis.
    let swept = cwd.path().join("swept.yaml");
    let text =
        std::fs::read_to_string(file).unwrap() + "sweep:\n  grid: { mask.rate: [0.3, 0.6, 0.9] }\n";
    std::fs::write(&swept, text).unwrap();
    let out = ticketlab(
        &[
            "plan",
            "swept.yaml",
            "--grid",
            "mask.rate=[0.5]",
            "--zip",
            "dense.lr=[0.001,0.003]",
            "--zip",
            "dense.steps=[10,20]",
        ],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.starts_with("experiment quickstart (12 stages"), "{plan}");
    assert!(plan.contains("dense[dense.lr=0.003,dense.steps=20] "), "{plan}");
    assert!(plan.contains("mask[dense.lr=0.001,dense.steps=10,mask.rate=0.5] "), "{plan}");
    assert!(!plan.contains("mask.rate=0.9"), "{plan}");
    // check counts the expanded stages too.
    let out = ticketlab(&["check", "swept.yaml", "--seeds", "3"], cwd.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok (45 stages)"), "{}", stdout(&out));
}

#[test]
fn bad_sweep_flags_are_reported_together_naming_the_flags() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let out = ticketlab(
        &[
            "check",
            file,
            "--grid",
            "mask.rate=[0.3,1.5]",
            "--zip",
            "dense.steps=[10",
            "--seeds",
            "0",
        ],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = unwrapped_stderr(&out);
    for needle in ["--grid mask.rate=[0.3,1.5]", "--zip dense.steps=[10", "--seeds 0", "3 problems"]
    {
        assert!(err.contains(needle), "no {needle:?} in:\n{err}");
    }
    // The commands that would use the file fail with 2.
    let out = ticketlab(&["plan", file, "--grid", "mask.rate=0.3"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        unwrapped_stderr(&out)
            .contains("`--grid mask.rate=0.3`: expected a list of values in brackets"),
        "{}",
        stderr(&out)
    );
    // A number that is not one is a usage error from the argument parser.
    let out = ticketlab(&["plan", file, "--seeds", "many"], cwd.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(unwrapped_stderr(&out).contains("--seeds"), "{}", stderr(&out));
}

#[test]
fn setting_a_swept_parameter_is_refused_with_a_pointer_to_grid() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let swept = cwd.path().join("swept.yaml");
    let text =
        std::fs::read_to_string(&file).unwrap() + "sweep:\n  grid: { mask.rate: [0.3, 0.6] }\n";
    std::fs::write(&swept, text).unwrap();
    let out = ticketlab(&["check", "swept.yaml", "--set", "mask.rate=0.5"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = unwrapped_stderr(&out);
    assert!(err.contains("swept.yaml:") && err.contains("is swept by the file"), "{err}");
    assert!(err.contains("--grid mask.rate=[0.5]"), "{err}");
    let out = ticketlab(
        &["check", file.to_str().unwrap(), "--grid", "mask.rate=[0.3]", "--set", "mask.rate=0.5"],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        unwrapped_stderr(&out).contains("is swept by `--grid mask.rate=[0.3]`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_problem_of_a_file_and_its_flags_is_in_one_report() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let out = ticketlab(
        &["check", file.to_str().unwrap(), "--set", "dens.steps=1", "--set", "mask.rate=2"],
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = unwrapped_stderr(&out);
    assert!(err.contains("no stage `dens`") && err.contains("did you mean `dense`?"), "{err}");
    assert!(err.contains("invalid value for `mask.rate`") && err.contains("2 problems"), "{err}");
    // A structural problem (a negative seed) and a checker problem (an unknown plugin).
    std::fs::write(
        cwd.path().join("bad.yaml"),
        "name: bad\nseed: -1\nstages:\n  data: { kind: dataset, uses: modulr }\n",
    )
    .unwrap();
    let out = ticketlab(&["check", "bad.yaml"], cwd.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = unwrapped_stderr(&out);
    assert!(err.contains("bad.yaml:2:7: `seed` must be an integer >= 0"), "{err}");
    assert!(err.contains("did you mean `modular`?") && err.contains("2 problems"), "{err}");
}

#[test]
fn every_command_that_loads_an_experiment_takes_the_sweep_flags() {
    let cwd = tempfile::tempdir().unwrap();
    for command in ["run", "plan", "check", "snapshot"] {
        let out = ticketlab(&[command, "--help"], cwd.path());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let help = stdout(&out);
        for flag in ["--set", "--grid", "--zip", "--seeds", "--plugin"] {
            assert!(help.contains(flag), "`ticketlab {command} --help` lacks {flag}:\n{help}");
        }
    }
}

/// A run killed with SIGKILL while it trains (not a clean stop) resumes from its last saved
/// state and ends with the same summary as a run that was never interrupted.
#[test]
fn a_killed_run_resumes_and_ends_like_an_uninterrupted_one() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set: Vec<String> = [
        "dense.steps=300",
        "dense.eval_every=50",
        "dense.resume_every=50",
        "ticket_train.steps=50",
        "ticket_train.eval_every=25",
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect();
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = ticketlab(&with(&["run", file, "--out", "run", "--quiet"], &set), whole_dir.path());
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));

    let cwd = tempfile::tempdir().unwrap();
    kill_once_states_are_saved(
        &with(&["run", file, "--out", "killed", "--quiet"], &set),
        cwd.path(),
        1,
    );
    let rest = ticketlab(&with(&["run", file, "--out", "run"], &set), cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert!(stdout(&rest).contains("1 resumed"), "{}", stdout(&rest));
    let summary = |dir: &Path| std::fs::read_to_string(dir.join("run/summary.json")).unwrap();
    assert_eq!(summary(cwd.path()), summary(whole_dir.path()));
}

/// Runs `ticketlab` with `args` in `cwd` and kills it with SIGKILL once its store (the default
/// `.ticketlab`) holds `states` resumable training states.
pub fn kill_once_states_are_saved(args: &[&str], cwd: &Path, states: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketlab"))
        .args(args)
        .current_dir(cwd)
        .env("CI", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = cwd.join(".ticketlab/partial");
    let started = std::time::Instant::now();
    while partial.read_dir().map_or(0, Iterator::count) < states {
        assert!(started.elapsed().as_secs() < 120, "no resumable state was saved");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it saved its states");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The counts of the run summary's last line: (ran, cached).
fn ran_and_cached(out: &str) -> (usize, usize) {
    let line = out
        .lines()
        .find(|l| l.contains(" ran, "))
        .unwrap_or_else(|| panic!("no count line in {out}"));
    let count = |label: &str| {
        line.split(", ")
            .find(|p| p.ends_with(label))
            .and_then(|p| p.split(' ').next()?.parse().ok())
            .unwrap()
    };
    (count("ran"), count("cached"))
}

/// Two processes started at once on one store split its stages: each stage is computed by
/// exactly one of them (the other loads it), and both end with the same results.
#[test]
fn two_runs_sharing_a_store_compute_each_stage_once() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let mut set = tiny();
    set.extend(
        ["--grid", "mask.rate=[0.3, 0.5, 0.7, 0.8]", "--jobs", "1", "--store", "shared"]
            .map(String::from),
    );
    let spawn = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_ticketlab"))
            .args(with(&["run", file, "--out", out], &set))
            .current_dir(cwd.path())
            .env("CI", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
    let ((ran_a, cached_a), (ran_b, cached_b)) =
        (ran_and_cached(&stdout(&a)), ran_and_cached(&stdout(&b)));
    assert_eq!(ran_a + cached_a, ran_b + cached_b, "both runs cover every stage");
    assert_eq!(
        ran_a + ran_b,
        ran_a + cached_a,
        "every stage is computed once: a ran {ran_a}, b ran {ran_b}"
    );
    let summary =
        |out: &str| std::fs::read_to_string(cwd.path().join(out).join("summary.json")).unwrap();
    assert_eq!(summary("a"), summary("b"));
    let leases = cwd.path().join("shared/leases");
    assert!(leases.read_dir().map_or(true, |mut d| d.next().is_none()), "every lease is released");
}

#[test]
fn a_compare_baseline_names_the_copy_of_its_own_sweep_point_and_seed() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let mut set = tiny();
    set.extend(
        ["--set", "compare.baseline=dense", "--seeds", "2", "--grid", "data.op=[add, subtract]"]
            .map(String::from),
    );
    let out = ticketlab(
        &with(&["run", file.to_str().unwrap(), "--out", "run", "--store", "s", "--quiet"], &set),
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut compares = 0;
    for entry in std::fs::read_dir(cwd.path().join("run/analyses")).unwrap() {
        let path = entry.unwrap().path();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let arm = |prefix: &str| {
            let arms = value["arms"].as_array().unwrap();
            arms.iter()
                .map(|a| a["arm"].as_str().unwrap().to_string())
                .find(|a| a.starts_with(prefix))
                .unwrap()
        };
        // `dense[data.op="add"]@seed1` is the baseline of `ticket_train[data.op="add"]@seed1`.
        let (dense, ticket) = (arm("dense["), arm("ticket_train["));
        assert_eq!(value["baseline"].as_str(), Some(dense.as_str()), "{}", path.display());
        assert_eq!(
            dense.strip_prefix("dense"),
            ticket.strip_prefix("ticket_train"),
            "{}",
            path.display()
        );
        compares += 1;
    }
    assert_eq!(compares, 4, "two operations times two seeds");
    // summary.json measures each arm against the same copy.
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cwd.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    let arms = summary["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 8);
    for a in arms {
        let (arm, baseline) = (a["arm"].as_str().unwrap(), a["baseline"].as_str().unwrap());
        let point = arm.trim_start_matches("dense").trim_start_matches("ticket_train");
        assert_eq!(baseline, format!("dense{point}"), "{arm}");
    }
}

/// A model too large for the memory allowed is refused before anything runs, at the parameter
/// to change, by `check`, `plan` and `run` alike; `plan` shows every stage's estimate.
#[test]
fn a_model_beyond_the_memory_limit_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let huge = ["--set", "init.width=10000000", "--max-memory", "1G"];
    for command in [&["check", file][..], &["plan", file], &["run", file, "--out", "out"]] {
        let args: Vec<&str> = command.iter().chain(&huge).copied().collect();
        let out = ticketlab(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        let err = unwrapped_stderr(&out);
        assert!(
            err.contains("quickstart.yaml:17:32: `init.width` (from `--set init.width=10000000`)"),
            "{err}"
        );
        assert!(err.contains("more than the 1.0 GiB of --max-memory"), "{err}");
    }
    assert!(!dir.path().join("out").exists(), "nothing ran");
    let plan = ticketlab(&["plan", file, "--max-memory", "1G"], dir.path());
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let init =
        stdout(&plan).lines().find(|l| l.trim_start().starts_with("init ")).map(str::to_string);
    assert!(init.is_some_and(|l| l.contains("KiB")), "{}", stdout(&plan));
    let bad = ticketlab(&["run", file, "--max-memory", "lots"], dir.path());
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// A learning rate that makes the loss NaN stops that arm with the step and the fix; the stages
/// that need it are reported as not run, and the run directory is still written.
#[test]
fn a_diverging_arm_fails_with_its_step_and_the_fix() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let mut set = tiny();
    set.extend(["--set".to_string(), "dense.lr=1e30".to_string()]);
    let args =
        with(&["run", file.to_str().unwrap(), "--store", "s", "--out", "out", "--quiet"], &set);
    let out = ticketlab(&args, cwd.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stage `dense` failed: training diverged at step"), "{err}");
    assert!(err.contains("lower the learning rate"), "{err}");
    assert!(cwd.path().join("out/manifest.json").is_file(), "the run directory is written");
}

/// `runs` lists run directories with their headline; `store` shows what the store holds, and
/// `store gc` removes only entries no run directory refers to (`--dry-run` removes nothing).
#[test]
fn runs_lists_run_directories_and_store_gc_keeps_what_they_use() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let longer = [set.clone(), vec!["--set".into(), "dense.steps=40".into()]].concat();
    for (out, extra) in [("runs/a", &set), ("runs/b", &longer)] {
        let args = with(&["run", file, "--store", "s", "--out", out, "--quiet"], extra);
        let run = ticketlab(&args, cwd.path());
        assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    }
    let listed = ticketlab(&["runs"], cwd.path());
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let text = stdout(&listed);
    // Too few steps to generalise: the headline says so, with the best accuracy reached.
    for needle in [
        "runs/a",
        "runs/b",
        "quickstart",
        "no arm generalised; best test accuracy",
        "2 run directories",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let shown = stdout(&ticketlab(&["store", "--store", "s"], cwd.path()));
    assert!(shown.contains("entries") && shown.contains("train"), "{shown}");

    std::fs::remove_dir_all(cwd.path().join("runs/b")).unwrap();
    let count = |t: &str| {
        t.lines().filter(|l| l.starts_with("would remove ") || l.starts_with("removed ")).count()
    };
    let dry = ticketlab(&["store", "gc", "--store", "s", "--dry-run"], cwd.path());
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let would = count(&stdout(&dry));
    assert!(would > 0, "{}", stdout(&dry));
    assert_eq!(
        stdout(&ticketlab(&["store", "--store", "s"], cwd.path())),
        shown,
        "--dry-run removed something"
    );
    let gc = ticketlab(&["store", "gc", "--store", "s"], cwd.path());
    assert_eq!(count(&stdout(&gc)), would, "{}", stdout(&gc));
    // What run a used is all still there.
    let plan = ticketlab(&with(&["plan", file, "--store", "s"], &set), cwd.path());
    assert!(stdout(&plan).contains("0 to run"), "{}", stdout(&plan));
    std::fs::create_dir(cwd.path().join("empty")).unwrap();
    let refused = ticketlab(&["store", "gc", "--store", "s", "--runs", "empty"], cwd.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(unwrapped_stderr(&refused).contains("nothing was removed"), "{}", stderr(&refused));
}

/// Keys hold only what changes a result: a sweep copy of a stage that draws no random numbers
/// (magnitude pruning, rewinding, full-batch training) is the stored stage, and how often a
/// trainer saves a resumable state changes nothing.
#[test]
fn a_sweep_copy_of_a_deterministic_stage_reuses_the_stored_result() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = tiny();
    let run = ticketlab(&with(&["run", file, "--store", "s", "--quiet"], &set), cwd.path());
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let status = |extra: &[&str]| {
        let args: Vec<&str> = with(&["plan", file, "--store", "s"], &set)
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let out = ticketlab(&args, cwd.path());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .skip(2)
            .filter_map(|l| {
                let stage = l.split_whitespace().next()?;
                Some((stage.split('[').next()?.to_string(), l.trim_end().ends_with("cached")))
            })
            .collect::<Vec<_>>()
    };
    let swept = status(&["--grid", "mask.rate=[0.6]"]);
    for stage in ["data", "init", "dense", "mask", "ticket", "ticket_train"] {
        assert!(
            swept.iter().any(|(s, cached)| s == stage && *cached),
            "{stage} is not cached: {swept:?}"
        );
    }
    let resumed = status(&["--set", "dense.resume_every=7"]);
    assert!(resumed.iter().all(|(_, cached)| *cached), "{resumed:?}");
    // A stage that draws random numbers (the initialisation) is another computation under the
    // seed of another name: not reused.
    let random = status(&["--grid", "init.width=[48]"]);
    assert!(random.iter().any(|(s, cached)| s == "init" && !cached), "{random:?}");
}

/// `--random` draws points deterministically in `--sample-seed`: a second run of the same
/// command computes nothing, and the manifest records the flags.
#[test]
fn random_points_are_drawn_again_the_same_and_cost_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let file = root().join("experiments/quickstart.yaml");
    let set = tiny();
    let random = [
        "--random",
        "ticket_train.lr=loguniform(1e-3, 1e-2)",
        "--samples",
        "2",
        "--sample-seed",
        "5",
    ];
    let mut args = vec!["run", file.to_str().unwrap(), "--store", "s", "--quiet", "--jobs", "1"];
    args.extend(random);
    let first = ticketlab(&with(&[&args[..], &["--out", "a"]].concat(), &set), cwd.path());
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let plan_args = [&["plan", file.to_str().unwrap(), "--store", "s"][..], &random[..]].concat();
    let plan = ticketlab(&with(&plan_args, &set), cwd.path());
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let shown = stdout(&plan);
    let drawn: Vec<&str> =
        shown.lines().filter(|l| l.trim_start().starts_with("ticket_train[")).collect();
    assert_eq!(drawn.len(), 2, "{shown}");
    assert!(drawn.iter().all(|l| l.ends_with("cached")), "drawn again, stored: {shown}");
    let summary = std::fs::read_to_string(cwd.path().join("a/summary.csv")).unwrap();
    assert!(summary.lines().next().unwrap().contains("ticket_train.lr"), "{summary}");
    let manifest = std::fs::read_to_string(cwd.path().join("a/manifest.json")).unwrap();
    assert!(manifest.contains("--random ticket_train.lr=loguniform(1e-3, 1e-2)"), "{manifest}");
    assert!(manifest.contains("--sample-seed 5"), "{manifest}");
}

/// `bench --profile`: every part of the paper MLP's step is there, the products' FLOPs are
/// those of its products as the engine runs them, and the parts add up to the step.
#[test]
fn bench_profile_accounts_for_the_step() {
    let out = ticketlab(
        &[
            "bench",
            "--model",
            "mlp",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--profile",
            "--json",
        ],
        &root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let profile = &report["profile"];
    let parts = profile["parts"].as_array().unwrap();
    let part = |name: &str| {
        parts.iter().find(|p| p["part"] == name).unwrap_or_else(|| panic!("no {name}: {profile}"))
    };
    for name in [
        "dense_product",
        "elementwise",
        "gather_scatter",
        "reduction",
        "optimizer",
        "graph_overhead",
    ] {
        assert!(part(name)["ms"].as_f64().unwrap() > 0.0, "{name}: {profile}");
    }
    // The products as the engine runs them: nine of them (three layers, each forward, for its
    // weight's gradient and for its input's; the one-hot embedding is a gather), fewer FLOPs
    // than the products as the model writes them, since chains of products are reassociated
    // (the embedding and the first layer multiply once, 67 rows instead of 911).
    let dense = part("dense_product");
    assert_eq!(dense["calls"].as_f64(), Some(9.0), "{profile}");
    let flops = dense["flops"].as_f64().unwrap();
    let as_written = report["flops_per_step"].as_f64().unwrap();
    assert!(flops > 0.05 * as_written && flops < as_written, "{flops} of {as_written}");
    let total: f64 = parts.iter().map(|p| p["ms"].as_f64().unwrap()).sum();
    let step = profile["ms_per_step_mean"].as_f64().unwrap();
    assert!(total <= step * 1.01 && total >= step * 0.5, "parts {total} ms of a {step} ms step");
    let kernels: f64 =
        profile["kernels"].as_array().unwrap().iter().map(|k| k["ms"].as_f64().unwrap()).sum();
    let kernel_parts: f64 = parts
        .iter()
        .filter(|p| {
            !["graph_overhead", "read_out", "host_loss", "optimizer"]
                .contains(&p["part"].as_str().unwrap())
        })
        .map(|p| p["ms"].as_f64().unwrap())
        .sum();
    assert!((kernels - kernel_parts).abs() < 1e-6, "{kernels} vs {kernel_parts}");
    assert!(profile["peak"]["sgemm_gflops"].as_f64().unwrap() > 0.0, "{profile}");
    assert!(profile["peak"]["copy_gb_per_s"].as_f64().unwrap() > 0.0, "{profile}");
    assert!(profile["peak"]["handoff_round_trip_ns"].is_null(), "one thread: {profile}");
    assert_eq!(report["single_thread_steps"].as_u64(), Some(0), "one thread: {report}");
}

/// `bench` at two threads: the timed steps include the tuner's first trial, half of whose steps
/// run on one thread, unless `--fixed-threads` splits every step; `--profile` times the round
/// trip between the two kernel threads.
#[test]
fn bench_reports_the_steps_on_one_thread_and_the_round_trip() {
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "--steps", "30", "--warmup", "1", "--threads", "2", "--json"];
        args.extend_from_slice(extra);
        let out = ticketlab(&args, &root());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let tuned = bench(&["--profile"]);
    let single = tuned["single_thread_steps"].as_u64().unwrap();
    assert!((8..=30).contains(&single), "{tuned}");
    let round_trip = tuned["profile"]["peak"]["handoff_round_trip_ns"].as_f64().unwrap();
    assert!(round_trip > 0.0 && round_trip < 1e6, "{round_trip} ns");
    let fixed = bench(&["--fixed-threads"]);
    assert_eq!(fixed["single_thread_steps"].as_u64(), Some(0), "{fixed}");
    assert_eq!(fixed["final_loss"], tuned["final_loss"], "the same bits either way");
}

#[test]
fn a_device_this_build_or_machine_cannot_use_is_refused_with_the_fix() {
    let bench = |backend: &str| {
        Command::new(env!("CARGO_BIN_EXE_ticketlab"))
            .args(["bench", "--model", "mlp", "--steps", "1", "--warmup", "0"])
            .current_dir(root())
            .env("TICKETLAB_BACKEND", backend)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("ticketlab runs")
    };
    let unknown = bench("tpu");
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("TICKETLAB_BACKEND=tpu: unknown device; use cpu or cuda"));
    // Without the `cuda` feature the fix is to build with it; with it, on a machine without a
    // GPU, the driver's answer (never a panic inside luminal_cuda).
    let cuda = bench("cuda");
    let err = stderr(&cuda);
    if cfg!(feature = "cuda") {
        assert!(
            cuda.status.code() == Some(0)
                || err.contains("TICKETLAB_BACKEND=cuda: the CUDA driver"),
            "{err}"
        );
    } else {
        assert_eq!(cuda.status.code(), Some(2), "{err}");
        assert!(err.contains("built without CUDA") && err.contains("--features cuda"), "{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}
