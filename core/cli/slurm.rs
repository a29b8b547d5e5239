//! `run --on slurm`: the plan as a Slurm job array whose tasks share one store.
//!
//! Every array task runs the whole plan against the shared store with one job. The store's
//! per-stage leases ([`ticketlab_engine::lease`]) make the tasks split the stages: a task
//! computes a stage nobody holds, skips one another task computes and loads it once stored, and
//! takes over a stage whose task died. Stages that depend on others simply wait for them, so no
//! Slurm job dependencies are needed. When the array has ended, the submitting process loads
//! every stage from the store and writes the run directory as a local run does; a stage the
//! array did not finish is reported as failed, and rerunning the command computes only those.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ticketlab_engine::{Plan, Store};

use crate::failure::Failure;
use crate::load::{ExperimentArgs, Source};

/// Where `run` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// On this machine's cores (`--jobs`).
    Local,
    /// As a Slurm job array against a shared `--store`.
    Slurm,
}

/// The options of a submission.
pub struct Submission<'a> {
    /// The experiment.
    pub source: &'a Source,
    /// Its sweep flags, forwarded to every task.
    pub experiment: &'a ExperimentArgs,
    /// The shared store.
    pub store: &'a Store,
    /// `KEY=VALUE` options for sbatch (`partition=gpu`, `time=02:00:00`, `cpus-per-task=4`).
    pub options: &'a [String],
    /// The experiment's name, for the job name and log files.
    pub name: &'a str,
    /// Array tasks.
    pub tasks: usize,
    /// `--batch-arms`, forwarded to every task.
    pub batch_arms: crate::commands::BatchArms,
}

/// The `sbatch` script of a submission.
pub fn script(s: &Submission<'_>) -> Result<String, Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::input(format!("cannot find the ticketlab executable to run on the cluster: {e}"))
    })?;
    let root = absolute(s.store.root())?;
    let logs = root.join("slurm");
    let mut out = String::from("#!/bin/bash\n");
    let _ = writeln!(out, "#SBATCH --job-name=ticketlab-{}", s.name);
    let _ = writeln!(out, "#SBATCH --array=0-{}", s.tasks.max(1) - 1);
    let _ =
        writeln!(out, "#SBATCH --output={}", logs.join(format!("{}-%A_%a.out", s.name)).display());
    for option in s.options {
        let (key, value) = parse_option(option)?;
        let _ = writeln!(out, "#SBATCH --{key}={value}");
    }
    let mut args: Vec<String> = vec![exe.display().to_string(), "run".into()];
    if let Source::File(f) = s.source {
        args.push(absolute(f)?.display().to_string());
    }
    let e = s.experiment;
    for (flag, values) in
        [("--set", &e.set), ("--grid", &e.grid), ("--zip", &e.zip), ("--random", &e.random)]
    {
        for v in values {
            args.extend([flag.to_string(), v.clone()]);
        }
    }
    for (flag, n) in
        [("--seeds", e.seeds), ("--samples", e.samples), ("--sample-seed", e.sample_seed)]
    {
        if let Some(n) = n {
            args.extend([flag.to_string(), n.to_string()]);
        }
    }
    if let Some(bytes) = s.experiment.max_memory {
        args.extend(["--max-memory".to_string(), bytes.to_string()]);
    }
    for p in &s.experiment.plugins {
        args.extend(["--plugin".to_string(), absolute(p)?.display().to_string()]);
    }
    args.extend([
        "--store".to_string(),
        root.display().to_string(),
        "--jobs".into(),
        "1".into(),
        "--quiet".into(),
    ]);
    if s.batch_arms == crate::commands::BatchArms::Off {
        args.extend(["--batch-arms".to_string(), "off".to_string()]);
    }
    let task_dir = logs.join(format!("{}-task", s.name));
    let _ = writeln!(out, "set -eu");
    // The script itself lies in the store: a node that cannot see it cannot share the store.
    let marker = quote(&script_path(s.store, s.name).display().to_string());
    let message = quote(&format!(
        "ticketlab: the store {} is not visible on this node: --on slurm needs a store on a filesystem every node shares",
        root.display()
    ));
    let _ = writeln!(out, "[ -f {marker} ] || {{ echo {message} >&2; exit 2; }}");
    let _ = writeln!(out, "cd {}", quote(&absolute(Path::new("."))?.display().to_string()));
    let _ = writeln!(
        out,
        "exec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --out {}-\"$SLURM_ARRAY_JOB_ID\"_\"$SLURM_ARRAY_TASK_ID\"",
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        quote(&task_dir.display().to_string())
    );
    Ok(out)
}

/// `KEY=VALUE` of `--slurm-option`, checked so that it cannot break the script.
fn parse_option(option: &str) -> Result<(&str, &str), Failure> {
    let (key, value) = option.split_once('=').ok_or_else(|| {
        Failure::input(format!(
            "--slurm-option `{option}`: expected KEY=VALUE, e.g. partition=gpu or time=02:00:00"
        ))
    })?;
    let key_ok =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let value_ok = !value.is_empty() && !value.chars().any(|c| c.is_control() || c.is_whitespace());
    if !key_ok || !value_ok || ["array", "output", "job-name", "wait", "parsable"].contains(&key) {
        return Err(Failure::input(format!(
            "--slurm-option `{option}`: KEY must be an sbatch option name (letters, digits, - and _) other than array, output, job-name, wait and parsable, and VALUE non-empty without spaces"
        )));
    }
    Ok((key, value))
}

/// Refuses a submission without `sbatch` (the store's writability is checked with the run
/// directory's, before this).
pub fn preflight() -> Result<(), Failure> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("sbatch").is_file()));
    if found {
        return Ok(());
    }
    Err(Failure::input(
        "`sbatch` was not found on PATH: `--on slurm` needs the Slurm client tools (sbatch, squeue). To use this machine's cores instead, run without `--on slurm` (and with `--jobs N`)",
    ))
}

/// Submits `script` and, with `wait`, prints the array's progress until it ends; returns the
/// job id.
pub fn submit(
    script: &str,
    store: &Store,
    plan: &Plan,
    name: &str,
    wait: bool,
) -> Result<String, Failure> {
    let path = script_path(store, name);
    let logs = path.parent().expect("the script lies in the store's slurm folder");
    std::fs::create_dir_all(logs)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", logs.display())))?;
    std::fs::write(&path, script)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    let mut sbatch = Command::new("sbatch");
    sbatch.arg("--parsable");
    if wait {
        sbatch.arg("--wait");
    }
    let mut child = sbatch
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::failed(format!("cannot start sbatch: {e}")))?;
    let start = Instant::now();
    let total = plan.stages.len();
    let mut shown = usize::MAX;
    let status = loop {
        if let Some(status) =
            child.try_wait().map_err(|e| Failure::failed(format!("sbatch: {e}")))?
        {
            break status;
        }
        let stored = plan.stages.iter().filter(|s| store.contains(&s.key)).count();
        if wait && stored != shown {
            eprintln!("slurm: {stored} of {total} stages stored ({}s)", start.elapsed().as_secs());
            shown = stored;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let output = child.wait_with_output().map_err(|e| Failure::failed(format!("sbatch: {e}")))?;
    let job = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if job.is_empty() {
        return Err(Failure::failed(format!(
            "sbatch did not submit the array: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    if wait && !status.success() {
        eprintln!(
            "slurm: job {job} ended with a failed task ({status}); logs in {}",
            store.root().join("slurm").display()
        );
    }
    Ok(job)
}

/// Where the script of this submission is written: in the store, so that tasks can check that
/// they see it.
fn script_path(store: &Store, name: &str) -> PathBuf {
    let root = std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    root.join("slurm").join(format!("{name}-{}.sbatch", std::process::id()))
}

fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(p)
        .map_err(|e| Failure::input(format!("cannot resolve {}: {e}", p.display())))
}

/// `arg` quoted for a POSIX shell where needed.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
