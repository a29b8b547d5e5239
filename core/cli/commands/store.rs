//! `ticketlab store`: what the store holds; `ticketlab store gc`: removes the entries no run
//! directory refers to and no running run needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use ticketlab_api::budget::human;
use ticketlab_engine::Store;
use ticketlab_engine::store::ActiveRun;
use ticketlab_output::rundir::{InProgress, RUNS_DIR, find_runs, read_manifest};

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
    /// Remove every finished entry that no run directory refers to, keeping what runs in
    /// progress need, and the temporary files of writers that are gone.
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
        // A run directory that cannot be read protects nothing: refuse rather than guess. One
        // not finished (running, stopped, cut short) keeps what it needs to resume.
        let keys = match InProgress::read(dir).map_err(Failure::input)? {
            Some(marker) => marker.keys,
            None => {
                let manifest = read_manifest(dir).map_err(Failure::input)?;
                manifest.stages.into_iter().filter_map(|s| s.key).collect()
            }
        };
        kept.extend(keys);
    }
    let mut out = String::new();
    // Runs in progress on this store (whatever their run directory) and stages being computed.
    let running = in_use(&store)?;
    for run in &running.runs {
        let _ = writeln!(
            out,
            "keeping the {} entries of `{}`, running as {}",
            run.keys.len(),
            run.experiment,
            run.holder.describe()
        );
    }
    let unused: Vec<_> = objects.iter().filter(|o| !kept.contains(o.key.as_str())).collect();
    let mut removed = Vec::new();
    for o in unused {
        // Looked at again for each entry: a run may have started since the listing.
        if in_use(&store)?.keys.contains(o.key.as_str()) {
            continue;
        }
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
        removed.push(o);
    }
    if !dry_run {
        let temporaries = store.remove_dead_temporaries().map_err(Failure::failed)?;
        if !temporaries.is_empty() {
            let _ = writeln!(
                out,
                "removed {} temporary files of writers that are gone",
                temporaries.len()
            );
        }
    }
    let freed: u64 = removed.iter().map(|o| o.bytes).sum();
    let _ = writeln!(
        out,
        "{} {} of {} entries ({}); {} run directories and {} running runs refer to the other {}",
        if dry_run { "would remove" } else { "removed" },
        removed.len(),
        objects.len(),
        human(freed),
        found.len(),
        running.runs.len(),
        objects.len() - removed.len()
    );
    print(&out)
}

/// What processes working on the store need now.
struct InUse {
    /// The runs in progress.
    runs: Vec<ActiveRun>,
    /// Their keys and the keys of live leases.
    keys: BTreeSet<String>,
}

fn in_use(store: &Store) -> Result<InUse, Failure> {
    let runs = store.active_runs().map_err(Failure::failed)?;
    let mut keys: BTreeSet<String> = runs.iter().flat_map(|r| r.keys.iter().cloned()).collect();
    keys.extend(
        store.leases().into_iter().filter(|(_, h)| !h.is_gone()).map(|(k, _)| k.to_string()),
    );
    Ok(InUse { runs, keys })
}
