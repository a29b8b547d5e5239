//! Stopping never loses work: SIGINT and SIGTERM save every running training at a step boundary
//! and the rerun resumes there bit for bit; `store gc` keeps what a running run needs and removes
//! the temporaries of dead writers; a run directory cut short never passes for a finished one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::{root, stderr, stdout, ticketlab, with};

/// The quickstart with a dense training long enough to be stopped in (a few seconds) and no
/// periodic saves: only a save at the signal can explain a resumed step above 0.
fn long_dense() -> Vec<String> {
    long_dense_saving_every(100_000)
}

/// [`long_dense`] with a periodic save every `steps` steps.
fn long_dense_saving_every(steps: u64) -> Vec<String> {
    [
        "dense.steps=2000".to_string(),
        "dense.eval_every=100".to_string(),
        format!("dense.resume_every={steps}"),
        "ticket_train.steps=40".to_string(),
        "ticket_train.eval_every=20".to_string(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect()
}

/// A `ticketlab` process in a process group of its own (so that a signal reaches it as it would
/// from a terminal or from Slurm), with its plain progress lines forwarded as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(args: &[&str], cwd: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ticketlab"));
        command
            .args(args)
            .current_dir(cwd)
            .env("CI", "1")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("ticketlab starts");
        let pipe = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines, stderr: Vec::new() }
    }

    /// Waits for a line of stderr that `pred` accepts.
    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = pred(&line);
                self.stderr.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no such line came:\n{}", self.stderr.join("\n"));
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit code and the whole of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        self.stderr.extend(self.lines.iter());
        (status.code(), self.stderr.join("\n"))
    }
}

/// The step a line `... state saved at step N` names, for `stage`.
fn saved_step(err: &str, stage: &str) -> u64 {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{stage}: state saved at step ")))
        .unwrap_or_else(|| panic!("no saved state of {stage}:\n{err}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Stops a run with `signal` once `stage` has trained a while, checks what it left, resumes it
/// and compares the end with a run never stopped; returns the steps the stopped arms saved.
fn stop_resume_compare(signal: &str, extra: &[&str], stages: &[&str]) -> Vec<u64> {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = long_dense();
    let args: Vec<&str> = with(&["run", file, "--out", "run"], &set)
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = ticketlab(&[args.as_slice(), &["--quiet"]].concat(), whole_dir.path());
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));

    let cwd = tempfile::tempdir().unwrap();
    let mut run = Running::start(&args, cwd.path());
    let prefix = format!("{}: step ", stages[0]);
    run.wait_for(|l| l.trim_start().starts_with(&prefix) && !l.contains(" step 0/"));
    run.signal(signal);
    let (code, err) = run.finish();
    assert_eq!(code, Some(3), "a stopped run exits with 3:\n{err}");
    assert!(err.contains(&format!("stopped (SIG{signal})")), "{err}");
    let steps: Vec<u64> = stages.iter().map(|s| saved_step(&err, s)).collect();
    for &step in &steps {
        assert!(step > 0 && step < 2000, "saved at the signal, mid-training: {step}");
    }
    assert!(err.contains("resume with: ticketlab run"), "{err}");
    let store = cwd.path().join(".ticketlab");
    let leases = std::fs::read_dir(store.join("leases")).map_or(0, Iterator::count);
    assert_eq!(leases, 0, "every lease is released");
    let dir = cwd.path().join("run");
    assert!(!dir.join("manifest.json").exists() && !dir.join("summary.json").exists());
    let marker = std::fs::read_to_string(dir.join("in_progress.json")).unwrap();
    assert!(marker.contains(&format!("\"interrupted\": \"SIG{signal}\"")), "{marker}");
    let listed = ticketlab(&["runs", "run"], cwd.path());
    assert!(stdout(&listed).contains(&format!("stopped (SIG{signal})")), "{}", stdout(&listed));

    // The rerun (into the same directory, no --force needed) resumes each arm at its step and
    // ends as the run never stopped.
    let rest = ticketlab(&args, cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    for (stage, step) in stages.iter().zip(&steps) {
        let resumed = format!("{stage}: resuming from the state saved at step {step}");
        assert!(stderr(&rest).contains(&resumed), "{resumed}:\n{}", stderr(&rest));
    }
    let summary = |dir: &Path| std::fs::read_to_string(dir.join("run/summary.json")).unwrap();
    assert_eq!(summary(cwd.path()), summary(whole_dir.path()));
    assert!(!dir.join("in_progress.json").exists(), "the marker goes once the run finished");
    steps
}

#[test]
fn sigterm_saves_the_training_and_the_rerun_ends_bit_for_bit_like_an_unstopped_run() {
    stop_resume_compare("TERM", &[], &["dense"]);
}

/// SIGINT (Ctrl-C) stops a batch of arms: each saves its own state at the same step.
#[test]
fn sigint_stops_a_batch_of_arms_and_each_resumes_from_the_step_of_the_signal() {
    let steps = stop_resume_compare(
        "INT",
        &["--grid", "dense.lr=[0.003, 0.002]", "--jobs", "1", "--threads", "1"],
        &["dense[dense.lr=0.003]", "dense[dense.lr=0.002]"],
    );
    assert_eq!(steps[0], steps[1], "the arms of a batch stop together");
}

/// A second signal exits at once, with the store still usable: the rerun finishes.
#[test]
fn a_second_signal_exits_at_once_and_the_store_stays_usable() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let set = long_dense();
    let args = with(&["run", file, "--out", "run"], &set);
    let cwd = tempfile::tempdir().unwrap();
    let mut run = Running::start(&args, cwd.path());
    run.wait_for(|l| l.trim_start().starts_with("dense: step ") && !l.contains(" step 0/"));
    run.signal("INT");
    run.signal("INT");
    let (code, err) = run.finish();
    assert_eq!(code, Some(3), "{err}");
    let rest = ticketlab(&args, cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    assert!(cwd.path().join("run/manifest.json").is_file());
}

/// `store gc` while another run trains on the same store keeps everything that run needs, says
/// whose it is, and the run then finishes with a complete run directory, every stage stored.
#[test]
fn gc_while_a_run_trains_keeps_what_the_run_needs() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    // An older run, so that gc has run directories to read, and an entry nobody needs.
    let old = ticketlab(
        &with(
            &["run", file, "--out", "runs/old", "--quiet", "--set", "seed=7"],
            &crate::cli::tiny(),
        ),
        cwd.path(),
    );
    assert_eq!(old.status.code(), Some(0), "{}", stderr(&old));
    let orphan = ticketlab(
        &with(
            &["run", file, "--out", "elsewhere/orphan", "--quiet", "--set", "seed=8"],
            &crate::cli::tiny(),
        ),
        cwd.path(),
    );
    assert_eq!(orphan.status.code(), Some(0), "{}", stderr(&orphan));
    std::fs::remove_dir_all(cwd.path().join("elsewhere/orphan")).unwrap();

    // The run in progress writes its directory outside `runs/`: only the store knows it runs.
    let set = long_dense();
    let args = with(&["run", file, "--out", "elsewhere/live"], &set);
    let mut run = Running::start(&args, cwd.path());
    run.wait_for(|l| l.trim_start().starts_with("dense: step ") && !l.contains(" step 0/"));
    let gc = ticketlab(&["store", "gc"], cwd.path());
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    let said = stdout(&gc);
    assert!(said.contains("of `quickstart`, running as process"), "{said}");
    let removed: usize = said
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("removed "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(removed >= 5, "the orphan's own entries go: {said}");
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    let live = cwd.path().join("elsewhere/live");
    assert!(live.join("manifest.json").is_file() && live.join("report.md").is_file());
    let plan = ticketlab(&with(&["plan", file], &set), cwd.path());
    assert!(!stdout(&plan).contains("will run"), "every stage stays stored: {}", stdout(&plan));
}

/// Temporary files of writers that died are removed by gc; those of a live writer stay.
#[test]
fn gc_removes_the_temporaries_of_dead_writers_only() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let out = ticketlab(
        &with(&["run", file, "--out", "runs/a", "--quiet"], &crate::cli::tiny()),
        cwd.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tmp = cwd.path().join(".ticketlab/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    let host = host.trim();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let key = "ab".repeat(32);
    let dead_object = tmp.join(format!("{key}.{host}.{dead}.0"));
    let dead_state = tmp.join(format!("partial-{key}.{host}.{dead}.1"));
    let live = tmp.join(format!("{key}.{host}.{}.2", std::process::id()));
    std::fs::create_dir_all(&dead_object).unwrap();
    std::fs::write(dead_object.join("half.safetensors"), b"half").unwrap();
    std::fs::write(&dead_state, b"half").unwrap();
    std::fs::write(&live, b"being written").unwrap();
    let gc = ticketlab(&["store", "gc"], cwd.path());
    assert_eq!(gc.status.code(), Some(0), "{}", stderr(&gc));
    assert!(stdout(&gc).contains("removed 2 temporary files"), "{}", stdout(&gc));
    assert!(!dead_object.exists() && !dead_state.exists() && live.exists());
}

/// A run killed before it wrote its manifest is listed as cut short, not as finished; its
/// report is only a partial one, saying so; the rerun into the same directory completes it. An
/// emptied or truncated metrics.jsonl is refused by `report`, naming the file.
#[test]
fn a_run_directory_cut_short_never_passes_for_a_finished_one() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    // Periodic saves, and a training long enough not to end before the kill.
    let set = long_dense_saving_every(100);
    let cwd = tempfile::tempdir().unwrap();
    let args = with(&["run", file, "--out", "cut", "--quiet"], &set);
    crate::cli::kill_once_states_are_saved(&args, cwd.path(), 1);
    let dir = cwd.path().join("cut");
    assert!(dir.join("in_progress.json").is_file() && !dir.join("manifest.json").exists());
    let listed = ticketlab(&["runs", "cut"], cwd.path());
    assert!(stdout(&listed).contains("cut short"), "{}", stdout(&listed));
    // Its report is a partial one, from the live log, saying the run did not finish.
    let report = ticketlab(&["report", "cut"], cwd.path());
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let partial = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(partial.starts_with("# quickstart (partial)"), "{partial}");
    assert!(partial.contains("did not finish: its process ended"), "{partial}");
    let rest = ticketlab(&args, cwd.path());
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    let listed = ticketlab(&["runs", "cut"], cwd.path());
    assert!(stdout(&listed).contains(" yes "), "{}", stdout(&listed));

    let metrics = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for cut in [String::new(), lines[..lines.len() - 1].join("\n") + "\n"] {
        std::fs::write(&metrics, cut).unwrap();
        let report = ticketlab(&["report", "cut"], cwd.path());
        assert_ne!(report.status.code(), Some(0), "a cut metrics.jsonl is refused");
        let err = stderr(&report).replace("\n  │ ", " ");
        assert!(err.contains("metrics.jsonl") && err.contains("truncated"), "{err}");
    }
}

/// A shared store with one folder that cannot be written is refused before anything runs,
/// naming that folder (a file stands in its place: permissions do not bind a root user).
#[test]
fn every_folder_of_the_store_is_checked_before_anything_runs() {
    let file = root().join("experiments/quickstart.yaml");
    let file = file.to_str().unwrap();
    for folder in ["objects", "partial", "leases", "tmp", "active"] {
        let cwd = tempfile::tempdir().unwrap();
        let store = cwd.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join(folder), b"not a folder").unwrap();
        let out = ticketlab(&["run", file, "--store", "store", "--quiet"], cwd.path());
        assert_eq!(out.status.code(), Some(2), "{folder}: {}", stderr(&out));
        let err = stderr(&out).replace("\n  │ ", " ");
        assert!(err.contains(&format!("cannot write the store store/{folder}")), "{err}");
        let objects = std::fs::read_dir(store.join("objects")).map_or(0, Iterator::count);
        assert_eq!(objects, 0, "{folder}: nothing ran");
    }
}
