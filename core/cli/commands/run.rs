//! `ticketlab run [FILE]`: plan, execute against the store, and write the run directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ticketlab_api::artifact::Artifact;
use ticketlab_api::text::utc_stamp;
use ticketlab_engine::{ExecOptions, Execution, Plan, Store, execute_selecting, plan};
use ticketlab_output::live::LiveLog;
use ticketlab_output::names;
use ticketlab_output::progress::{Progress, ProgressMode};
use ticketlab_output::rundir::{self, InProgress, Invocation, RunOutputs, StageFacts};

use super::RuntimeArgs;
use crate::failure::{Failure, print};
use crate::load::{self, ExperimentArgs, Source};
use crate::signals;
use crate::slurm::{self, Target};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (.yaml or .tlx); without it, the built-in quickstart runs.
    pub file: Option<PathBuf>,
    /// The run directory (default: runs/<experiment>-<timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// The store of finished stages (default: .ticketlab in the working directory).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// A short label for this run, shown by `ticketlab runs` (which filters by it with
    /// `--tag`) and in the report.
    #[arg(long, value_name = "TEXT")]
    pub tag: Option<String>,
    /// Free text about this run (what it tries, why), kept in manifest.json and shown in the
    /// report.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Exit with code 1 when a claim of the experiment fails (its verdict over seeds; an
    /// undecided claim does not fail).
    #[arg(long)]
    pub strict: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stages computed at once (default: the number of cores). Results are the same for every
    /// value.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Threads of the matrix kernels of each stage (default: the cores divided by --jobs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// `on`: training stages that share their shapes, data and schedule train together, one
    /// compiled graph per batch (the plan's `batch` column); `off`: each alone. Each stage's
    /// numbers are the same either way.
    #[arg(long, value_enum, default_value = "on", value_name = "on|off")]
    pub batch_arms: super::BatchArms,
    /// Replace the run in `--out` if it holds one (otherwise an earlier run is never
    /// overwritten).
    #[arg(long)]
    pub force: bool,
    /// Where to compute: `local` (this machine's cores) or `slurm` (a Slurm job array of the
    /// plan against a shared `--store`; waits for it, then writes the run directory here).
    #[arg(long, value_enum, default_value = "local")]
    pub on: Target,
    /// An sbatch option for `--on slurm`, as KEY=VALUE (`partition=gpu`, `time=02:00:00`,
    /// `cpus-per-task=4`, `mem=8G`); repeatable.
    #[arg(long = "slurm-option", value_name = "KEY=VALUE")]
    pub slurm_options: Vec<String>,
    /// With `--on slurm`: print the sbatch script and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With `--on slurm`: return once the array is submitted (rerun the command when it has
    /// ended to write the run directory).
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Compute the stages other processes hold leases on in this store, even if they look alive
    /// (for a holder known to be gone before its lease expires; a holder still running computes
    /// them too, and the first result stored is kept).
    #[arg(long)]
    pub steal_leases: bool,
    /// Stop every training at step N, saving its state, as Ctrl-C would there (for testing
    /// resumption).
    #[arg(long, value_name = "N", hide = true)]
    pub interrupt_after_steps: Option<u64>,
    /// The command the manifest records as the one that reproduces the run (`reproduce` runs
    /// each file as this equivalent `run` command); by default this process's command line.
    #[arg(skip)]
    pub command: Option<String>,
}

/// Runs the experiment; a failed stage gives exit code 1 after every finished stage is stored.
pub fn run(args: Args) -> Result<(), Failure> {
    let jobs = match args.jobs {
        Some(0) => return Err(Failure::input("--jobs must be at least 1")),
        Some(n) => n,
        None => load::cores(),
    };
    let threads = load::threads(args.threads, jobs)?;
    let source = Source::of(args.file.clone());
    let loaded = load::experiment(source, &args.experiment)?;
    let store = super::store(args.store.as_ref())?;
    let runtime = args.runtime.runtime(&loaded.runtime, threads)?;
    let plan = plan(&loaded.ir, &loaded.registry, Some(&store), &runtime)
        .map(|plan| args.batch_arms.apply(plan))
        .map_err(Failure::input)?;
    let mut options = ExecOptions {
        interrupt_after_steps: args.interrupt_after_steps,
        jobs,
        only_stored: None,
        steal_leases: args.steal_leases,
        runtime,
        rungs: Default::default(),
    };
    if args.on == Target::Local && (args.dry_run || args.no_wait || !args.slurm_options.is_empty())
    {
        return Err(Failure::input("--dry-run, --no-wait and --slurm-option go with --on slurm"));
    }
    if args.on == Target::Slurm
        && let Some(ps) = plan.stages.iter().find(|ps| selects(ps))
    {
        return Err(Failure::input(format!(
            "stage `{}` selects its sweep points by successive halving (`select`), which runs on this machine only: run without --on slurm, or leave `select` out",
            ps.stage.name
        )));
    }
    let name = &loaded.ir.name;
    let submission = slurm::Submission {
        source: &loaded.source,
        experiment: &args.experiment,
        store: &store,
        options: &args.slurm_options,
        name,
        // One array task per training job: a stage alone, or a whole batch.
        tasks: plan.training_jobs().max(1),
        batch_arms: args.batch_arms,
    };
    if args.on == Target::Slurm && args.dry_run {
        return print(&slurm::script(&submission)?);
    }
    // Where the results go is checked before anything runs.
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => unused(rundir::default_run_dir(name)),
    };
    check_writable(&dir, &store, args.force)?;
    if args.on == Target::Slurm {
        let script = slurm::script(&submission)?;
        slurm::preflight()?;
        let job = slurm::submit(&script, &store, &plan, name, !args.no_wait)?;
        if args.no_wait {
            return print(&format!(
                "submitted Slurm job {job} ({} tasks); when it has ended, run the same command again to write the run directory\n",
                submission.tasks
            ));
        }
        let logs = store.root().join("slurm");
        options.only_stored = Some(format!(
            "the Slurm array (job {job}) did not finish it; its logs are in {}. Run the command again to compute what is missing",
            logs.display()
        ));
    }
    let mut marker = InProgress {
        host: ticketlab_engine::store::host_name(),
        pid: std::process::id(),
        started_utc: utc_stamp(std::time::SystemTime::now(), true),
        experiment: name.clone(),
        command: resume_command(&dir, args.out.is_some()),
        keys: plan.stages.iter().map(|ps| ps.key.to_string()).collect(),
        interrupted: None,
        overrides: args.experiment.overrides_typed(),
        tag: args.tag.clone(),
    };
    marker.write(&dir).map_err(|e| {
        Failure::input(format!("cannot write the run directory {}: {e}", dir.display()))
    })?;
    signals::stop_on_signals(options.runtime.stop.clone())?;
    let live = LiveLog::create(&dir.join(names::LIVE)).map_err(Failure::input)?;
    let mut events = (Progress::new(ProgressMode::detect(args.quiet)), live);
    let exec = execute_selecting(&plan, &loaded.registry, &store, &options, &mut events);
    drop(events);
    if exec.stopped {
        let reason = options.runtime.stop.reason().map(str::to_string).unwrap_or_else(|| {
            format!("--interrupt-after-steps {}", args.interrupt_after_steps.unwrap_or_default())
        });
        marker.interrupted = Some(reason.clone());
        let kept = marker.write(&dir);
        let mut message = interrupted(&reason, &exec, &plan, &store, &dir, &marker.command);
        if let Err(e) = kept {
            message.push_str(&format!("(the run directory's marker could not be updated: {e})\n"));
        }
        return Err(Failure::Interrupted(message));
    }
    let facts = StageFacts::from_execution(&plan, &exec);
    let backend = format!("{}/{}", plan.backend.device, plan.backend.precision);
    let outputs = RunOutputs::new(
        &loaded.ir,
        &exec.artifacts,
        &facts,
        &loaded.registry,
        Invocation {
            command: args.command.clone().unwrap_or_else(command_line),
            overrides: args.experiment.overrides_typed(),
            tag: args.tag.clone(),
            note: args.note.clone(),
            engine_commit: crate::ENGINE_COMMIT.map(str::to_string),
        },
        threads,
        &backend,
    );
    let written = ticketlab_output::write_run(&dir, &outputs);
    if !args.quiet {
        print(&summary(&exec))?;
        if let Ok(run) = &written {
            print(&super::claims::verdicts(&run.claims))?;
            print(&format!("run directory: {}\n", dir.display()))?;
        }
    }
    let mut problems: Vec<String> = exec.failures().into_iter().map(str::to_string).collect();
    match written {
        Err(e) => problems.push(format!("cannot write the run directory {}: {e}", dir.display())),
        Ok(run) if args.strict => problems.extend(super::claims::failed(&run.claims)),
        Ok(_) => {}
    }
    if problems.is_empty() { Ok(()) } else { Err(Failure::Failed(problems.join("\n"))) }
}

/// Whether `ps` selects its sweep points by successive halving (a `select` with rungs).
fn selects(ps: &ticketlab_engine::PlannedStage) -> bool {
    let rungs = ps.stage.params.get("select").and_then(|s| s.get("rungs"));
    rungs.and_then(|r| r.as_array()).is_some_and(|r| !r.is_empty())
}

/// `dir`, or `dir-2`, `dir-3`, ... if it exists (two runs started in the same second).
fn unused(dir: PathBuf) -> PathBuf {
    if !dir.exists() {
        return dir;
    }
    (2..)
        .map(|i| PathBuf::from(format!("{}-{i}", dir.display())))
        .find(|d| !d.exists())
        .expect("some suffix is free")
}

/// Refuses, before any stage runs, a run directory that holds another run (unless `force`) or
/// cannot be written, and a store any of whose folders cannot be written.
fn check_writable(dir: &Path, store: &Store, force: bool) -> Result<(), Failure> {
    if dir.join(names::MANIFEST).is_file() && !force {
        return Err(Failure::input(format!(
            "--out {}: the folder holds an earlier run ({}); choose another --out, or add --force to replace that run",
            dir.display(),
            names::MANIFEST
        )));
    }
    for folder in [dir.to_path_buf(), dir.join(names::FIGURES)] {
        ticketlab_engine::store::probe_writable(&folder).map_err(|e| {
            Failure::input(format!(
                "cannot write the run directory {} ({e}); choose a writable --out",
                folder.display()
            ))
        })?;
    }
    store.check_writable().map_err(|(folder, e)| {
        Failure::input(format!(
            "cannot write the store {} ({e}); every folder of the store must be writable: fix its permissions or choose a writable --store",
            folder.display()
        ))
    })
}

/// The command that resumes this run into `dir`: the command as typed, with `--out DIR` added
/// when it had none.
fn resume_command(dir: &Path, has_out: bool) -> String {
    let command = command_line();
    if has_out {
        return command;
    }
    format!("{command} --out {}", slurm::quote(&dir.display().to_string()))
}

/// What a run stopped by `reason` saved, and the command that resumes it.
fn interrupted(
    reason: &str,
    exec: &Execution,
    plan: &Plan,
    store: &Store,
    dir: &Path,
    resume: &str,
) -> String {
    let mut out = format!(
        "ticketlab: stopped ({reason}); nothing was written to the run directory but its in_progress.json\n"
    );
    for (name, step) in exec.interrupted() {
        let saved = plan
            .stage(name)
            .and_then(|ps| store.partial_step(&ps.key).ok().flatten())
            .filter(|&saved| saved == step);
        let line = match saved {
            Some(step) => format!("  {name}: state saved at step {step}\n"),
            None if step == 0 => format!("  {name}: stopped; it starts again\n"),
            None => format!(
                "  {name}: stopped at step {step} without a resumable state; it starts again\n"
            ),
        };
        out.push_str(&line);
    }
    let finished = exec.reports.iter().filter(|r| r.outcome.succeeded()).count();
    out.push_str(&format!(
        "{finished} of {} stages are finished and stored in {}\nresume with: {resume}\n(run directory: {})\n",
        exec.reports.len(),
        store.root().display(),
        dir.display()
    ));
    out
}

/// The command line as typed (the program as `ticketlab`), quoted for a POSIX shell where
/// needed.
fn command_line() -> String {
    std::iter::once("ticketlab".to_string())
        .chain(std::env::args().skip(1))
        .map(|a| slurm::quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table of the trained arms' headline numbers and a count of stages by outcome.
fn summary(exec: &Execution) -> String {
    let mut out = String::new();
    let runs: Vec<_> = exec
        .reports
        .iter()
        .filter_map(|r| match exec.artifact(&r.name) {
            Some(Artifact::Run(run)) => Some((r.name.as_str(), run)),
            _ => None,
        })
        .collect();
    if !runs.is_empty() {
        let width = runs.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(3);
        let _ = writeln!(
            out,
            "{:<width$}  {:>7}  {:>7}  {:>7}  {:>8}  {:>9}  {:>7}",
            "arm", "steps", "t_mem", "t_gen", "tau_grok", "test acc", "density"
        );
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for (name, run) in runs {
            let s = &run.summary;
            let _ = writeln!(
                out,
                "{name:<width$}  {:>7}  {:>7}  {:>7}  {:>8}  {:>9}  {:>7.3}",
                s.steps,
                opt(s.t_mem),
                opt(s.t_gen),
                s.tau_grok.map_or("-".to_string(), |t| format!("{t:.2}")),
                s.final_test_acc.map_or("-".to_string(), |a| format!("{:.2}%", a * 100.0)),
                s.density
            );
        }
    }
    let count = |label: &str| exec.reports.iter().filter(|r| r.outcome.label() == label).count();
    let cut = match count("cut") {
        0 => String::new(),
        n => format!(", {n} cut by successive halving"),
    };
    let _ = writeln!(
        out,
        "{} ran, {} resumed, {} cached{cut}, {} failed, {} not run",
        count("ran"),
        count("resumed"),
        count("cached"),
        count("failed"),
        count("not run")
    );
    out
}
