//! Loading experiments: the plugin registry (built-ins, `--plugin` libraries and the file's own
//! `plugins:` list) and the checked IR from the experiment-file front end.

use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;
use ticketlab_api::budget::Budget;
use ticketlab_api::ir::ExperimentIr;
use ticketlab_api::plugin::registry::Registry;
use ticketlab_api::runtime::{Device, Runtime};

use crate::failure::Failure;

/// The quickstart experiment, run by `ticketlab run` without a file.
pub const QUICKSTART: &str = include_str!("../../experiments/quickstart.yaml");

/// The name the embedded quickstart is reported under.
pub const QUICKSTART_NAME: &str = "experiments/quickstart.yaml";

/// Options shared by every command that loads an experiment file.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct ExperimentArgs {
    /// Override a parameter: STAGE.PARAM=VALUE (VALUE in YAML syntax); repeatable. A parameter
    /// the experiment sweeps cannot be set (use --grid).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Sweep a parameter over values, in every combination with the other grid axes:
    /// STAGE.PARAM=[V1,V2,...] (values in YAML flow syntax); replaces the file's axis of that
    /// parameter; repeatable.
    #[arg(long = "grid", value_name = "STAGE.PARAM=[V,...]")]
    pub grid: Vec<String>,
    /// Sweep a parameter over values paired index by index with the other zip axes:
    /// STAGE.PARAM=[V1,V2,...]; replaces the file's axis of that parameter; repeatable.
    #[arg(long = "zip", value_name = "STAGE.PARAM=[V,...]")]
    pub zip: Vec<String>,
    /// Repeat the whole experiment with N root seeds (seed, seed + 1, ...); replaces the file's
    /// `seeds`.
    #[arg(long = "seeds", value_name = "N")]
    pub seeds: Option<u64>,
    /// Draw a parameter at random: STAGE.PARAM=DIST with DIST `uniform(a, b)`,
    /// `loguniform(a, b)`, `int(a, b)` or `choice([v1, v2, ...])`; repeatable, with
    /// `--samples`. The points combine with the grid like zip rows.
    #[arg(long = "random", value_name = "STAGE.PARAM=DIST")]
    pub random: Vec<String>,
    /// How many random points to draw (replaces the file's `random.samples`).
    #[arg(long = "samples", value_name = "N")]
    pub samples: Option<u64>,
    /// The seed of the random draws (default 0; replaces the file's `random.seed`).
    #[arg(long = "sample-seed", value_name = "S")]
    pub sample_seed: Option<u64>,
    /// Load a dynamic plugin library (in addition to the file's `plugins:` list); repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<PathBuf>,
    /// Refuse a stage whose estimated memory (weights, checkpoints, kept evaluations) is more
    /// than SIZE (e.g. 8G; default: this machine's memory), before anything runs.
    #[arg(long, value_name = "SIZE", value_parser = ticketlab_api::budget::parse_size)]
    pub max_memory: Option<u64>,
}

/// Where an experiment comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// The embedded quickstart.
    Quickstart,
}

impl Source {
    /// The file given on the command line, or the quickstart when none is.
    pub fn of(file: Option<PathBuf>) -> Self {
        file.map_or(Source::Quickstart, Source::File)
    }

    /// The directory relative paths in the experiment resolve against.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            Source::File(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            Source::Quickstart => PathBuf::from("."),
        }
    }
}

impl ExperimentArgs {
    /// The command-line changes to the experiment, for the front end.
    pub fn overrides(&self) -> ticketlab_dsl::CliOverrides {
        ticketlab_dsl::CliOverrides {
            set: self.set.clone(),
            grid: self.grid.clone(),
            zip: self.zip.clone(),
            seeds: self.seeds,
            random: self.random.clone(),
            samples: self.samples,
            sample_seed: self.sample_seed,
            budget: Budget::new(self.max_memory),
        }
    }
    /// The changes to the file, as typed: `--set`, `--grid`, `--zip`, `--seeds` and the random
    /// draws (what `ticketlab runs` shows beside each run).
    pub fn overrides_typed(&self) -> Vec<String> {
        let flag = |name: &'static str| move |v: &String| format!("--{name} {v}");
        self.set
            .iter()
            .map(flag("set"))
            .chain(self.grid.iter().map(flag("grid")))
            .chain(self.zip.iter().map(flag("zip")))
            .chain(self.seeds.map(|n| format!("--seeds {n}")))
            .chain(self.random.iter().map(flag("random")))
            .chain(self.samples.map(|n| format!("--samples {n}")))
            .chain(self.sample_seed.map(|n| format!("--sample-seed {n}")))
            .collect()
    }
}

/// A checked experiment and the registry it was checked against.
pub struct Loaded {
    /// Every plugin: built-ins and loaded libraries.
    pub registry: Registry,
    /// The checked IR.
    pub ir: ExperimentIr,
    /// Where it came from.
    pub source: Source,
    /// How its stages compute (where relative paths resolve, device, memory budget); commands
    /// add threads and plugin
    /// isolation.
    pub runtime: Runtime,
}

/// The built-in registry plus the libraries in `paths`.
pub fn registry(paths: &[PathBuf]) -> Result<Registry, Failure> {
    let mut registry = Registry::builtin().map_err(Failure::failed)?;
    for path in paths {
        add_library(&mut registry, path)?;
    }
    Ok(registry)
}

fn add_library(registry: &mut Registry, path: &Path) -> Result<(), Failure> {
    ticketlab_engine::dylib::register_library(registry, path).map_err(Failure::input)?;
    Ok(())
}

/// Loads and checks an experiment with overrides and plugins.
///
/// A file that cannot be read, parsed or checked is an input error (exit code 2) for every
/// command, `check` included.
pub fn experiment(source: Source, args: &ExperimentArgs) -> Result<Loaded, Failure> {
    let runtime = Runtime {
        base_dir: source.base_dir(),
        device: device()?,
        budget: Budget::new(args.max_memory),
        ..Runtime::default()
    };
    let mut registry = registry(&args.plugins)?;
    let (name, text) = match &source {
        Source::File(path) => {
            let text = std::fs::read(path)
                .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
            (path.display().to_string(), text)
        }
        Source::Quickstart => (QUICKSTART_NAME.to_string(), QUICKSTART.as_bytes().to_vec()),
    };
    let diag = |d: ticketlab_dsl::Diagnostics| Failure::Rendered { text: d.render(), code: 2 };
    // Libraries named by the file itself, relative to the file's directory.
    let libraries = ticketlab_dsl::plugin_paths(&name, &text).map_err(diag)?;
    for lib in libraries {
        let path = Path::new(&lib);
        let path =
            if path.is_absolute() { path.to_path_buf() } else { source.base_dir().join(path) };
        add_library(&mut registry, &path)?;
    }
    let ir = ticketlab_dsl::load_source_with(&name, &text, &registry, &args.overrides())
        .map_err(diag)?;
    Ok(Loaded { registry, ir, source, runtime })
}

/// The device `TICKETLAB_BACKEND` names ([`ticketlab_tensor::kernels::requested_device`]), read
/// and checked once here and passed down with the runtime.
pub fn device() -> Result<Device, Failure> {
    ticketlab_tensor::kernels::requested_device().map_err(Failure::input)
}

/// The most threads the matrix kernels use.
const MAX_KERNEL_THREADS: usize = 4;

/// The cores of this machine.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The threads of the matrix kernels of one stage: `--threads`, else a valid
/// `MATMUL_NUM_THREADS`, else the cores left to each of `jobs` stages running at once (at least
/// one; the kernels use at most 4).
pub fn threads(threads: Option<usize>, jobs: usize) -> Result<usize, Failure> {
    let n = match threads {
        Some(0) => return Err(Failure::input("--threads must be at least 1")),
        Some(n) => n,
        None => {
            match std::env::var("MATMUL_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if n > 0 => n,
                _ => (cores() / jobs.max(1)).max(1),
            }
        }
    };
    Ok(n.min(MAX_KERNEL_THREADS))
}
