//! `ticketlab store`: what the store holds; `ticketlab store gc`: removes the entries no run
//! directory refers to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use ticketlab_api::budget::human;
use ticketlab_output::rundir::{RUNS_DIR, find_runs, read_manifest};

use crate::failure::{Failure, print};

/// Arguments of `store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The store (default: .ticketlab in the working directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub store: Option<PathBuf>,
}

/// What to do with the store.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Remove every finished entry that no run directory refers to (partial states of runs in
    /// progress are kept).
    Gc {
        /// Folders holding run directories, or run directories (default: runs); repeatable.
        #[arg(long = "runs", value_name = "DIR")]
        runs: Vec<PathBuf>,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Prints the store's size and entries by kind, or collects its garbage.
pub fn run(args: Args) -> Result<(), Failure> {
    let store = super::store(args.store.as_ref())?;
    let objects = store.objects().map_err(Failure::input)?;
    let Some(Action::Gc { runs, dry_run }) = args.action else {
        let mut kinds: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for o in &objects {
            let kind = o.meta.as_ref().map_or("unreadable", |m| m.kind.as_str()).to_string();
            let entry = kinds.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += o.bytes;
        }
        let total: u64 = objects.iter().map(|o| o.bytes).sum();
        let mut out = format!(
            "store {}: {} entries, {}\n",
            store.root().display(),
            objects.len(),
            human(total)
        );
        for (kind, (n, bytes)) in kinds {
            let _ = writeln!(out, "  {kind:<10} {n:>6}  {}", human(bytes));
        }
        return print(&out);
    };
    let found = find_runs(&runs).map_err(Failure::input)?;
    if found.is_empty() {
        let looked: Vec<String> = runs.iter().map(|d| d.display().to_string()).collect();
        let looked = if looked.is_empty() { RUNS_DIR.to_string() } else { looked.join(", ") };
        return Err(Failure::input(format!(
            "no run directories in {looked}; pass the folders that hold them with --runs DIR (nothing was removed)"
        )));
    }
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for dir in &found {
        // A run directory that cannot be read protects nothing: refuse rather than guess.
        let manifest = read_manifest(dir).map_err(Failure::input)?;
        kept.extend(manifest.stages.into_iter().filter_map(|s| s.key));
    }
    let unused: Vec<_> = objects.iter().filter(|o| !kept.contains(o.key.as_str())).collect();
    let mut out = String::new();
    for o in &unused {
        let stage = o.meta.as_ref().map_or("(unreadable)", |m| m.stage.as_str());
        let _ = writeln!(
            out,
            "{} {stage} {} {}",
            if dry_run { "would remove" } else { "removed" },
            o.key.short(),
            human(o.bytes)
        );
        if !dry_run {
            store.remove(&o.key).map_err(Failure::failed)?;
        }
    }
    let freed: u64 = unused.iter().map(|o| o.bytes).sum();
    let _ = writeln!(
        out,
        "{} {} of {} entries ({}); {} run directories refer to the other {}",
        if dry_run { "would remove" } else { "removed" },
        unused.len(),
        objects.len(),
        human(freed),
        found.len(),
        objects.len() - unused.len()
    );
    print(&out)
}
