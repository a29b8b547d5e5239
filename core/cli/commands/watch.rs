//! `ticketlab watch [DIR]`: follows a run while it trains, from its run directory's live log
//! (`live.jsonl`): per training its step, accuracies, t_mem and t_gen once reached, a sparkline
//! of the test accuracy and the time left; it exits when the run ends.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ticketlab_output::live;
use ticketlab_output::names;
use ticketlab_output::rundir::{InProgress, RUNS_DIR};

use crate::failure::{Failure, print};

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run directory (default: the one under runs/ whose live log changed last).
    pub dir: Option<PathBuf>,
    /// Print the state once and exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between two looks at the log.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub every: f64,
}

/// How the watched run stands.
enum Standing {
    Running,
    Finished,
    Stopped(String),
    Gone(u32),
}

/// Shows the run until it ends: exit 0 when it finished or was stopped on request (the resume
/// command is printed), 1 when its process ended without finishing, 2 for a directory without a
/// live log.
pub fn run(args: Args) -> Result<(), Failure> {
    if !(args.every.is_finite() && args.every > 0.0) {
        return Err(Failure::input("--every must be a positive number of seconds"));
    }
    let dir = match args.dir {
        Some(dir) => dir,
        None => latest()?,
    };
    let log = dir.join(names::LIVE);
    let terminal = std::io::stdout().is_terminal() && !args.once;
    let mut shown = String::new();
    loop {
        // Read the standing first: a run that ends after it was read is caught next time.
        let standing = standing(&dir)?;
        let text = match std::fs::read_to_string(&log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::input(format!(
                    "{} has no {}: it is not a run directory, or its run has not started yet, or a version of ticketlab without live logs wrote it",
                    dir.display(),
                    names::LIVE
                )));
            }
            Err(e) => return Err(Failure::input(format!("cannot read {}: {e}", log.display()))),
        };
        let events = live::parse(&log, &text).map_err(Failure::input)?;
        let table = live::render(&live::arms(&events));
        if table != shown {
            let clear = if terminal { "\x1b[2J\x1b[H" } else { "" };
            print(&format!("{clear}{}\n{table}", dir.display()))?;
            shown = table;
        }
        match standing {
            Standing::Running if !args.once => {}
            Standing::Running => return Ok(()),
            Standing::Finished => {
                let report = dir.join(names::REPORT_MD);
                return print(&format!("finished; the report is {}\n", report.display()));
            }
            Standing::Stopped(message) => return print(&message),
            Standing::Gone(pid) => {
                return Err(Failure::failed(format!(
                    "the run's process ({pid}) ended without finishing the run directory; rerun its command (in {}) to finish it, every finished stage loads from the store",
                    dir.join(names::IN_PROGRESS).display()
                )));
            }
        }
        std::thread::sleep(Duration::from_secs_f64(args.every));
    }
}

/// Whether the run of `dir` goes on, finished, was stopped, or its process is gone.
fn standing(dir: &Path) -> Result<Standing, Failure> {
    match InProgress::read(dir).map_err(Failure::input)? {
        None if dir.join(names::MANIFEST).is_file() => Ok(Standing::Finished),
        None => Err(Failure::input(format!(
            "{} is not a run directory (it has neither {} nor {})",
            dir.display(),
            names::IN_PROGRESS,
            names::MANIFEST
        ))),
        Some(marker) => match marker.interrupted {
            Some(reason) => Ok(Standing::Stopped(format!(
                "stopped ({reason}); resume with: {}\n",
                marker.command
            ))),
            None if marker.process_gone() => Ok(Standing::Gone(marker.pid)),
            None => Ok(Standing::Running),
        },
    }
}

/// The run directory under runs/ whose live log changed last.
fn latest() -> Result<PathBuf, Failure> {
    let entries = std::fs::read_dir(RUNS_DIR).map_err(|e| {
        Failure::input(format!("cannot read {RUNS_DIR}/ ({e}); give the run directory to watch"))
    })?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let changed = e.path().join(names::LIVE).metadata().and_then(|m| m.modified()).ok()?;
            Some((changed, e.path()))
        })
        .max()
        .map(|(_, dir)| dir)
        .ok_or_else(|| {
            Failure::input(format!(
                "no run directory under {RUNS_DIR}/ has a live log; give the run directory to watch"
            ))
        })
}
