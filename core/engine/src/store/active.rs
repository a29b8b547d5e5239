//! Runs in progress on a store: every execution records the keys of its plan in
//! `active/<host>.<pid>.<n>.json`, with a heartbeat, for as long as it runs, so that
//! `ticketlab store gc` keeps what a running job has just stored or is about to load.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::Store;
use crate::lease::{Holder, Lease, read_holder, start_heartbeat};
use crate::plan::Plan;
use ticketlab_api::{Error, Result};

/// What `active/<...>.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveRun {
    /// The process running it, with its heartbeat.
    #[serde(flatten)]
    pub holder: Holder,
    /// The experiment's name.
    pub experiment: String,
    /// The key of every stage of its plan.
    pub keys: Vec<String>,
}

static ACTIVE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    fn active_dir(&self) -> PathBuf {
        self.root().join("active")
    }

    /// Records that this process runs `plan` on the store, until the returned guard is dropped.
    pub fn register_run(&self, plan: &Plan) -> Result<Lease> {
        let dir = self.active_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let holder = Holder::this_process();
        let path = dir.join(format!(
            "{}.{}.{}.json",
            holder.host,
            holder.pid,
            ACTIVE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let record = ActiveRun {
            holder: holder.clone(),
            experiment: plan.name.clone(),
            keys: plan.stages.iter().map(|ps| ps.key.to_string()).collect(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Store(e.to_string()))?;
        fs::write(&path, bytes).map_err(|e| {
            Error::Store(format!(
                "cannot record the run in {} ({e}); `ticketlab store gc` run meanwhile would not know what it needs",
                path.display()
            ))
        })?;
        Ok(start_heartbeat(path, holder, move |h| {
            serde_json::to_vec(&ActiveRun { holder: h.clone(), ..record.clone() })
                .unwrap_or_default()
        }))
    }

    /// The runs in progress on this store whose process is alive; the records of runs whose
    /// process is gone are removed.
    pub fn active_runs(&self) -> Result<Vec<ActiveRun>> {
        let dir = self.active_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut runs = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let record: Option<ActiveRun> =
                fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
            match record {
                Some(run) if !run.holder.is_gone() => runs.push(run),
                Some(_) => {
                    let _ = fs::remove_file(&path);
                }
                // Being rewritten by its heartbeat, or not ours: judged by the holder alone.
                None => {
                    if read_holder(&path).is_some_and(|h| h.is_gone()) {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        runs.sort_by(|a, b| {
            (a.holder.started, a.holder.pid).cmp(&(b.holder.started, b.holder.pid))
        });
        Ok(runs)
    }
}
