//! `ticketlab reproduce [DIR]`: every experiment file of a folder run over one shared store,
//! then the generated part of the folder's `RESULTS.md` written from their run directories
//! (an experiment without one here keeps the section the page has for it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ticketlab_output::names;
use ticketlab_output::results::{self, Reproduced};
use ticketlab_output::rundir::RunFiles;

use super::{BatchArms, RuntimeArgs, run};
use crate::failure::{Failure, print};
use crate::load::ExperimentArgs;
use crate::slurm::{Target, quote};

/// Arguments of `reproduce`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of experiment files (default: experiments). Every `NAME.yaml` runs, and every
    /// `NAME.tlx` without a YAML twin (a twin is the same experiment).
    pub dir: Option<PathBuf>,
    /// Run only this experiment (a file name without its extension); repeatable. The results
    /// page still covers every experiment that has a run directory under `--runs`, and keeps
    /// the sections it already has for the others.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Repeat every experiment with N root seeds; replaces each file's `seeds`.
    #[arg(long, value_name = "N")]
    pub seeds: Option<u64>,
    /// Stages computed at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Threads of the matrix kernels of each stage (default: the cores divided by --jobs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The store every experiment shares, so that a stage two files have in common (the dense
    /// base) is computed once (default: .ticketlab in the working directory).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Where the run directories go, one per experiment, `RUNS/NAME` (default: runs/reproduce).
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
    /// The results page whose generated part is rewritten (default: DIR/RESULTS.md); its
    /// figures go to `figures/` beside it.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Run nothing: regenerate the page from the run directories already under `--runs`.
    #[arg(long)]
    pub no_run: bool,
    /// Where to compute: `local` or `slurm` (each experiment as a Slurm job array, as `run
    /// --on slurm`).
    #[arg(long, value_enum, default_value = "local")]
    pub on: Target,
    /// An sbatch option for `--on slurm`, as KEY=VALUE; repeatable.
    #[arg(long = "slurm-option", value_name = "KEY=VALUE")]
    pub slurm_options: Vec<String>,
    /// Print nothing but errors and the closing lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs every experiment (going on past one that fails), then writes the page from every run
/// directory there is; exit code 1 when an experiment failed, 3 when a signal stopped it.
pub fn run(args: Args) -> Result<(), Failure> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("experiments"));
    let files = experiment_files(&dir)?;
    for name in &args.only {
        if !files.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Failure::input(format!(
                "--only {name}: no experiment file {name}.yaml or {name}.tlx in {}; the experiments there are: {}",
                dir.display(),
                known.join(", ")
            )));
        }
    }
    let runs = args.runs.clone().unwrap_or_else(|| PathBuf::from("runs/reproduce"));
    let page = args.results.clone().unwrap_or_else(|| dir.join("RESULTS.md"));
    let started = Instant::now();
    let mut failed = Vec::new();
    if !args.no_run {
        for (name, file) in
            files.iter().filter(|(n, _)| args.only.is_empty() || args.only.contains(n))
        {
            let out = runs.join(name);
            if !args.quiet {
                print(&format!("== {name}: {}\n", command(&args, file, &out)))?;
            }
            match run::run(run_args(&args, file, &out)) {
                Ok(()) => {}
                Err(Failure::Interrupted(message)) => return Err(Failure::Interrupted(message)),
                Err(e) => failed.push(format!("{name}: {}", e.message())),
            }
        }
    }
    let (finished, missing): (Vec<_>, Vec<_>) =
        files.iter().partition(|(name, _)| runs.join(name).join(names::MANIFEST).is_file());
    let reproduced: Vec<Reproduced> = finished
        .into_iter()
        .map(|(name, file)| {
            let run = RunFiles::read(&runs.join(name)).map_err(Failure::input)?;
            Ok(Reproduced { file: file.display().to_string(), run })
        })
        .collect::<Result<_, Failure>>()?;
    let missing: Vec<&str> = missing.iter().map(|(name, _)| name.as_str()).collect();
    let kept = write_page(&page, &reproduced, &missing)?;
    let missing: Vec<&str> = missing.into_iter().filter(|m| !kept.contains(m)).collect();
    let seconds = started.elapsed().as_secs_f64();
    print(&closing(&reproduced, &kept, &missing, &page, seconds, args.no_run))?;
    if failed.is_empty() { Ok(()) } else { Err(Failure::Failed(failed.join("\n"))) }
}

/// Every experiment of `dir` by name, sorted: `NAME.yaml`, or `NAME.tlx` when there is no YAML.
fn experiment_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::input(format!(
            "cannot read the experiments folder {} ({e}); give the folder of experiment files",
            dir.display()
        ))
    })?;
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else { continue };
        let (stem, ext) = (stem.to_string_lossy().into_owned(), ext.to_string_lossy());
        if ext != "yaml" && ext != "tlx" || !path.is_file() {
            continue;
        }
        match found.iter_mut().find(|(n, _)| *n == stem) {
            Some(existing) if ext == "yaml" => existing.1 = path,
            Some(_) => {}
            None => found.push((stem, path)),
        }
    }
    if found.is_empty() {
        return Err(Failure::input(format!(
            "{} holds no experiment file (.yaml or .tlx)",
            dir.display()
        )));
    }
    found.sort();
    Ok(found)
}

/// The `run` command equivalent to running `file` here: what the page shows and the manifest
/// records.
fn command(args: &Args, file: &Path, out: &Path) -> String {
    let mut words = vec!["ticketlab".to_string(), "run".into(), file.display().to_string()];
    let mut option = |name: &str, value: String| {
        words.push(name.into());
        words.push(value);
    };
    if let Some(n) = args.seeds {
        option("--seeds", n.to_string());
    }
    if let Some(store) = &args.store {
        option("--store", store.display().to_string());
    }
    option("--out", out.display().to_string());
    if let Some(n) = args.jobs {
        option("--jobs", n.to_string());
    }
    if let Some(n) = args.threads {
        option("--threads", n.to_string());
    }
    if args.on == Target::Slurm {
        option("--on", "slurm".into());
        for o in &args.slurm_options {
            option("--slurm-option", o.clone());
        }
    }
    words.push("--force".into());
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// The arguments of that `run` command.
fn run_args(args: &Args, file: &Path, out: &Path) -> run::Args {
    run::Args {
        file: Some(file.to_path_buf()),
        out: Some(out.to_path_buf()),
        experiment: ExperimentArgs { seeds: args.seeds, ..ExperimentArgs::default() },
        store: args.store.clone(),
        tag: None,
        note: None,
        strict: false,
        quiet: args.quiet,
        jobs: args.jobs,
        threads: args.threads,
        batch_arms: BatchArms::On,
        force: true,
        on: args.on,
        slurm_options: args.slurm_options.clone(),
        dry_run: false,
        no_wait: false,
        runtime: RuntimeArgs::default(),
        steal_leases: false,
        interrupt_after_steps: None,
        command: Some(command(args, file, out)),
    }
}

/// Rewrites the generated part of `page` (created when missing) and its figures, keeping what
/// it held for the `missing` experiments (no run directory here); returns those it kept.
fn write_page<'a>(
    page: &Path,
    runs: &[Reproduced],
    missing: &[&'a str],
) -> Result<Vec<&'a str>, Failure> {
    let folder = page.parent().unwrap_or(Path::new("."));
    let existing = match std::fs::read_to_string(page) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure::input(format!("cannot read {} ({e})", page.display()))),
    };
    let kept = existing.as_deref().map_or(Vec::new(), |p| results::kept_sections(p, missing));
    let generated = results::generate(runs, &kept, &folder.join("figures"), "figures")
        .map_err(Failure::input)?;
    let text = results::splice(page, existing.as_deref(), &generated).map_err(Failure::input)?;
    ticketlab_output::files::write(page, text).map_err(Failure::input)?;
    Ok(missing.iter().copied().filter(|m| kept.iter().any(|k| k.stem == *m)).collect())
}

/// What was reproduced: experiments, trainings computed and loaded, wall time, the page; the
/// sections kept from the page and the experiments it does not show.
fn closing(
    runs: &[Reproduced],
    kept: &[&str],
    missing: &[&str],
    page: &Path,
    seconds: f64,
    no_run: bool,
) -> String {
    let (computed, loaded) =
        runs.iter().map(|r| r.run.manifest.trainings()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let mut out = format!(
        "{} experiments in {}; {} trainings ({} computed, {} loaded from the store), {:.0} s wall time{}\n",
        runs.len(),
        page.display(),
        computed + loaded,
        computed,
        loaded,
        seconds,
        if no_run { " (--no-run: nothing ran)" } else { "" }
    );
    if !kept.is_empty() {
        out.push_str(&format!(
            "kept as the page had them (no finished run directory here): {}\n",
            kept.join(", ")
        ));
    }
    if !missing.is_empty() {
        out.push_str(&format!(
            "not on the page (no finished run directory): {}\n",
            missing.join(", ")
        ));
    }
    out
}
