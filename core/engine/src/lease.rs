//! Leases: which process computes a stage, so that processes sharing a store (the jobs of a
//! Slurm array on a cluster's shared filesystem, two runs started by hand) never compute the
//! same stage at once.
//!
//! A lease is the file `leases/<key>.json` in the store, naming its holder (host, pid, when it
//! was taken and its latest heartbeat). It is taken by writing a temporary file and hard-linking
//! it to that name, which succeeds for exactly one process, on local disks and on NFS alike. The
//! holder rewrites its heartbeat every few seconds from a background thread and removes the file
//! when the stage is stored (or has failed). A lease whose holder is gone (a process of this host
//! that no longer exists, or a heartbeat older than [`EXPIRES_AFTER`]) is broken by the next
//! process that wants the stage, which then resumes from the stage's saved partial state.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::key::StageKey;
use super::store::{Store, host_name};
use crate::{Error, Result};

/// How often a holder renews its lease.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// A lease whose heartbeat is older than this is taken to belong to a dead process.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(60);

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When the lease was taken, in seconds since the Unix epoch.
    pub started: u64,
    /// The holder's latest heartbeat, in seconds since the Unix epoch.
    pub heartbeat: u64,
}

impl Holder {
    /// This process, now.
    pub fn this_process() -> Self {
        let now = unix_now();
        Self { host: host_name(), pid: std::process::id(), started: now, heartbeat: now }
    }

    /// Whether the holder is certainly gone: a process of this host that no longer runs, or a
    /// heartbeat older than [`EXPIRES_AFTER`].
    pub fn is_gone(&self) -> bool {
        let silent = unix_now().saturating_sub(self.heartbeat) > EXPIRES_AFTER.as_secs();
        silent || (self.host == host_name() && !process_exists(self.pid))
    }

    fn is_same_lease(&self, other: &Holder) -> bool {
        self.host == other.host && self.pid == other.pid && self.started == other.started
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on {}", self.pid, self.host)
    }
}

/// The outcome of [`Store::claim`].
#[derive(Debug)]
pub enum Claim {
    /// This process holds the lease until the [`Lease`] is dropped.
    Acquired(Lease),
    /// Another live process holds it.
    HeldBy(Holder),
}

/// A lease held by this process: renewed in the background, released when dropped.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
    holder: Holder,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Lease {
    /// Who holds it (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.heartbeat.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Remove the file only while it is still ours (a lease broken as stale may have been
        // taken by another process since).
        if read_holder(&self.path).is_some_and(|h| h.is_same_lease(&self.holder)) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

static LEASE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// The lease file of `key` (which may not exist).
    pub fn lease_path(&self, key: &StageKey) -> PathBuf {
        self.root().join("leases").join(format!("{key}.json"))
    }

    /// The holder of `key`'s lease, if anyone holds it.
    pub fn lease_holder(&self, key: &StageKey) -> Option<Holder> {
        read_holder(&self.lease_path(key))
    }

    /// Takes the lease of `key` for this process, breaking it first if its holder is gone.
    pub fn claim(&self, key: &StageKey) -> Result<Claim> {
        let path = self.lease_path(key);
        let dir = path.parent().expect("a lease file has a folder");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for _ in 0..2 {
            let holder = Holder::this_process();
            if try_link(dir, &path, &holder)? {
                return Ok(Claim::Acquired(start_heartbeat(path, holder)));
            }
            match read_holder(&path) {
                Some(h) if !h.is_gone() => return Ok(Claim::HeldBy(h)),
                // Gone, or the file vanished or is unreadable: move it aside and try once more.
                _ => {
                    let aside = dir.join(format!(
                        ".broken.{}.{}.{}",
                        key,
                        std::process::id(),
                        LEASE_COUNTER.fetch_add(1, Ordering::Relaxed)
                    ));
                    if fs::rename(&path, &aside).is_ok() {
                        let _ = fs::remove_file(&aside);
                    }
                }
            }
        }
        match read_holder(&path) {
            Some(h) => Ok(Claim::HeldBy(h)),
            None => Err(Error::Store(format!(
                "cannot take the lease {}: another process keeps replacing it",
                path.display()
            ))),
        }
    }
}

/// Writes `holder` to a fresh file and links it to `path`: true if this made the lease ours.
fn try_link(dir: &Path, path: &Path, holder: &Holder) -> Result<bool> {
    let tmp = dir.join(format!(
        ".new.{}.{}.{}",
        host_name(),
        holder.pid,
        LEASE_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    write_holder(&tmp, holder)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn start_heartbeat(path: PathBuf, holder: Holder) -> Lease {
    let stop = Arc::new(AtomicBool::new(false));
    let (p, mut h, s) = (path.clone(), holder.clone(), stop.clone());
    let heartbeat = std::thread::Builder::new()
        .name("ticketlab-lease".into())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::park_timeout(HEARTBEAT_EVERY);
                if s.load(Ordering::Relaxed)
                    || !read_holder(&p).is_some_and(|cur| cur.is_same_lease(&h))
                {
                    break;
                }
                h.heartbeat = unix_now();
                let tmp = p.with_extension(format!("beat.{}", h.pid));
                if write_holder(&tmp, &h).is_ok() {
                    let _ = fs::rename(&tmp, &p);
                }
            }
        })
        .ok();
    Lease { path, holder, stop, heartbeat }
}

fn write_holder(path: &Path, holder: &Holder) -> Result<()> {
    let bytes = serde_json::to_vec(holder).map_err(|e| Error::Store(e.to_string()))?;
    fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a process with this id runs on this host (where `/proc` tells; elsewhere assumed).
fn process_exists(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store, StageKey) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store"));
        (dir, store, StageKey::parse(&"ab".repeat(32)).unwrap())
    }

    fn plant(store: &Store, key: &StageKey, holder: &Holder) {
        let path = store.lease_path(key);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_holder(&path, holder).unwrap();
    }

    #[test]
    fn one_process_holds_a_lease_until_it_drops_it() {
        let (_dir, store, key) = store();
        let Claim::Acquired(lease) = store.claim(&key).unwrap() else {
            panic!("a free lease is taken")
        };
        assert_eq!(store.lease_holder(&key).as_ref(), Some(lease.holder()));
        // A live holder (this very process) keeps it.
        assert!(
            matches!(store.claim(&key).unwrap(), Claim::HeldBy(h) if h.pid == std::process::id())
        );
        drop(lease);
        assert!(store.lease_holder(&key).is_none(), "released on drop");
        assert!(matches!(store.claim(&key).unwrap(), Claim::Acquired(_)));
    }

    #[test]
    fn leases_of_gone_holders_are_broken_and_live_ones_kept() {
        let (_dir, store, key) = store();
        let now = unix_now();
        // A process of this host that does not exist.
        plant(
            &store,
            &key,
            &Holder { host: host_name(), pid: u32::MAX - 1, started: now, heartbeat: now },
        );
        assert!(
            matches!(store.claim(&key).unwrap(), Claim::Acquired(_)),
            "a dead local holder's lease is taken over"
        );
        let (_dir, store, key) = self::store();
        // Another host, silent for longer than the expiry.
        let old = now - EXPIRES_AFTER.as_secs() - 5;
        plant(
            &store,
            &key,
            &Holder { host: "elsewhere".into(), pid: 7, started: old, heartbeat: old },
        );
        assert!(
            matches!(store.claim(&key).unwrap(), Claim::Acquired(_)),
            "an expired lease is taken over"
        );
        let (_dir, store, key) = self::store();
        // Another host with a fresh heartbeat: its lease stands.
        plant(
            &store,
            &key,
            &Holder { host: "elsewhere".into(), pid: 7, started: now, heartbeat: now },
        );
        assert!(matches!(store.claim(&key).unwrap(), Claim::HeldBy(h) if h.host == "elsewhere"));
    }
}
