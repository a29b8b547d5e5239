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
use ticketlab_api::{Error, Result};

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

/// Why a holder counts as gone (see [`Holder::staleness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// A process of this host that no longer runs.
    Dead,
    /// No heartbeat for this many seconds (more than [`EXPIRES_AFTER`]).
    Silent(u64),
    /// A heartbeat this many seconds ahead of this host's clock (more than [`EXPIRES_AFTER`]):
    /// the holder's clock is wrong, or the file was edited, and waiting for the clock to catch
    /// up could take any time.
    FromTheFuture(u64),
}

impl Holder {
    /// This process, now.
    pub fn this_process() -> Self {
        let now = unix_now();
        Self { host: host_name(), pid: std::process::id(), started: now, heartbeat: now }
    }

    /// Why the holder is certainly gone, if it is: a process of this host that no longer runs, a
    /// heartbeat older than [`EXPIRES_AFTER`], or one more than that ahead of this host's clock.
    pub fn staleness(&self) -> Option<Stale> {
        let now = unix_now();
        if self.host == host_name() && !process_exists(self.pid) {
            Some(Stale::Dead)
        } else if now.saturating_sub(self.heartbeat) > EXPIRES_AFTER.as_secs() {
            Some(Stale::Silent(now - self.heartbeat))
        } else if self.heartbeat.saturating_sub(now) > EXPIRES_AFTER.as_secs() {
            Some(Stale::FromTheFuture(self.heartbeat - now))
        } else {
            None
        }
    }

    /// Whether the holder is certainly gone ([`Holder::staleness`]).
    pub fn is_gone(&self) -> bool {
        self.staleness().is_some()
    }

    /// Who holds it, since when, and how recently it was heard from, for messages.
    pub fn describe(&self) -> String {
        let age = unix_now() as i64 - self.heartbeat as i64;
        let heard = if age >= 0 {
            format!("heartbeat {age} s ago")
        } else {
            format!("heartbeat {} s ahead of this host's clock", -age)
        };
        format!("{self} has held it since {} ({heard})", utc(self.started))
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
    taken_over: Option<TakenOver>,
}

/// The lease another process held before this one took it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenOver {
    /// The earlier holder.
    pub from: Holder,
    /// Why it was taken: the holder was gone, or `None` when it was taken by request
    /// (`--steal-leases`) from a holder that looked alive.
    pub stale: Option<Stale>,
}

impl TakenOver {
    /// A line for the log when taking over says something the user should know (a clock
    /// ahead, a lease taken by request); `None` for the ordinary case of a dead holder.
    pub fn notice(&self) -> Option<String> {
        match self.stale {
            Some(Stale::FromTheFuture(ahead)) => Some(format!(
                "took over the lease of {}: its heartbeat ({}) is {ahead} s ahead of this host's clock ({}), so it was taken as stale; the clocks of hosts sharing a store must agree within {} s",
                self.from,
                utc(self.from.heartbeat),
                utc(unix_now()),
                EXPIRES_AFTER.as_secs()
            )),
            None => Some(format!(
                "took over the lease of {} as asked (--steal-leases); if it is still running, both compute this stage and the first result stored is kept",
                self.from
            )),
            Some(Stale::Dead | Stale::Silent(_)) => None,
        }
    }
}

impl Lease {
    /// Who holds it (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The earlier holder, when this lease was taken over from one.
    pub fn taken_over(&self) -> Option<&TakenOver> {
        self.taken_over.as_ref()
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

    /// Every lease file of the store with its holder (unreadable ones left out).
    pub fn leases(&self) -> Vec<(StageKey, Holder)> {
        let dir = self.root().join("leases");
        let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = StageKey::parse(name.strip_suffix(".json")?)?;
                Some((key, read_holder(&e.path())?))
            })
            .collect()
    }

    /// Takes the lease of `key` for this process, breaking it first if its holder is gone (or,
    /// with `steal`, whoever holds it). Breaking a dead holder's lease also removes the
    /// temporary files that holder left for `key`.
    pub fn claim(&self, key: &StageKey, steal: bool) -> Result<Claim> {
        let path = self.lease_path(key);
        let dir = path.parent().expect("a lease file has a folder");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut taken_over = None;
        for _ in 0..2 {
            let holder = Holder::this_process();
            if try_link(dir, &path, &holder)? {
                let mut lease = start_heartbeat(path, holder.clone(), move |h| {
                    serde_json::to_vec(h).unwrap_or_default()
                });
                lease.taken_over = taken_over;
                return Ok(Claim::Acquired(lease));
            }
            let current = read_holder(&path);
            let stale = current.as_ref().and_then(Holder::staleness);
            match current {
                Some(h) if stale.is_none() && !steal => return Ok(Claim::HeldBy(h)),
                // Gone, stolen, or the file vanished or is unreadable: move it aside and try once
                // more.
                _ => {
                    let aside = dir.join(format!(
                        ".broken.{}.{}.{}",
                        key,
                        std::process::id(),
                        LEASE_COUNTER.fetch_add(1, Ordering::Relaxed)
                    ));
                    if fs::rename(&path, &aside).is_ok() {
                        let _ = fs::remove_file(&aside);
                        if let Some(from) = current {
                            if stale.is_some() {
                                self.remove_temporaries_of(key, &from);
                            }
                            taken_over = Some(TakenOver { from, stale });
                        }
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

/// Takes `path` for `holder` and rewrites it every [`HEARTBEAT_EVERY`] with `holder`'s fresh
/// heartbeat, rendered by `render`, while the file still names `holder`.
pub(crate) fn start_heartbeat(
    path: PathBuf,
    holder: Holder,
    render: impl Fn(&Holder) -> Vec<u8> + Send + 'static,
) -> Lease {
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
                if fs::write(&tmp, render(&h)).is_ok() {
                    let _ = fs::rename(&tmp, &p);
                }
            }
        })
        .ok();
    Lease { path, holder, stop, heartbeat, taken_over: None }
}

fn write_holder(path: &Path, holder: &Holder) -> Result<()> {
    let bytes = serde_json::to_vec(holder).map_err(|e| Error::Store(e.to_string()))?;
    fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The holder a lease file (or any file that starts with a holder's fields) names.
pub(crate) fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `secs` since the Unix epoch as a UTC time for messages.
fn utc(secs: u64) -> String {
    ticketlab_api::text::utc_stamp(UNIX_EPOCH + Duration::from_secs(secs), true)
}

/// Whether a process with this id runs on this host (where `/proc` tells; elsewhere assumed).
pub fn process_exists(pid: u32) -> bool {
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
        let Claim::Acquired(lease) = store.claim(&key, false).unwrap() else {
            panic!("a free lease is taken")
        };
        assert_eq!(store.lease_holder(&key).as_ref(), Some(lease.holder()));
        // A live holder (this very process) keeps it.
        assert!(
            matches!(store.claim(&key, false).unwrap(), Claim::HeldBy(h) if h.pid == std::process::id())
        );
        drop(lease);
        assert!(store.lease_holder(&key).is_none(), "released on drop");
        assert!(matches!(store.claim(&key, false).unwrap(), Claim::Acquired(_)));
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
            matches!(store.claim(&key, false).unwrap(), Claim::Acquired(_)),
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
            matches!(store.claim(&key, false).unwrap(), Claim::Acquired(_)),
            "an expired lease is taken over"
        );
        let (_dir, store, key) = self::store();
        // Another host with a fresh heartbeat: its lease stands.
        plant(
            &store,
            &key,
            &Holder { host: "elsewhere".into(), pid: 7, started: now, heartbeat: now },
        );
        assert!(
            matches!(store.claim(&key, false).unwrap(), Claim::HeldBy(h) if h.host == "elsewhere")
        );
    }

    #[test]
    fn a_heartbeat_from_the_future_is_stale_and_says_both_clocks() {
        let (_dir, store, key) = store();
        let now = unix_now();
        let ahead = now + 3600;
        plant(
            &store,
            &key,
            &Holder { host: "elsewhere".into(), pid: 7, started: ahead, heartbeat: ahead },
        );
        let Claim::Acquired(lease) = store.claim(&key, false).unwrap() else {
            panic!("a lease an hour ahead is not waited for")
        };
        let taken = lease.taken_over().expect("it was taken over");
        assert!(matches!(taken.stale, Some(Stale::FromTheFuture(s)) if s >= 3599));
        let notice = taken.notice().unwrap();
        assert!(notice.contains("ahead of this host's clock") && notice.contains("agree within"));
        assert_eq!(
            notice.matches(&ticketlab_api::text::utc_stamp(SystemTime::now(), true)[..13]).count(),
            1,
            "{notice}"
        );
        // Within the margin, a clock slightly ahead is trusted.
        let (_dir, store, key) = self::store();
        plant(
            &store,
            &key,
            &Holder { host: "elsewhere".into(), pid: 7, started: now, heartbeat: now + 20 },
        );
        assert!(matches!(store.claim(&key, false).unwrap(), Claim::HeldBy(_)));
    }

    #[test]
    fn a_live_holder_is_described_and_taken_only_when_stealing() {
        let (_dir, store, key) = store();
        let now = unix_now();
        let holder = Holder { host: "elsewhere".into(), pid: 7, started: now - 30, heartbeat: now };
        plant(&store, &key, &holder);
        let Claim::HeldBy(h) = store.claim(&key, false).unwrap() else { panic!("held") };
        let said = h.describe();
        assert!(said.starts_with("process 7 on elsewhere has held it since "), "{said}");
        assert!(said.contains("heartbeat 0 s ago") || said.contains("heartbeat 1 s ago"), "{said}");
        let Claim::Acquired(lease) = store.claim(&key, true).unwrap() else { panic!("stolen") };
        let taken = lease.taken_over().unwrap();
        assert_eq!((taken.from.pid, taken.stale), (7, None));
        assert!(taken.notice().unwrap().contains("--steal-leases"));
    }

    #[test]
    fn breaking_a_dead_holders_lease_removes_its_temporaries() {
        let (_dir, store, key) = store();
        let now = unix_now();
        let dead = Holder { host: host_name(), pid: u32::MAX - 1, started: now, heartbeat: now };
        plant(&store, &key, &dead);
        let tmp = store.root().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let theirs = tmp.join(format!("partial-{key}.{}.{}.3", dead.host, dead.pid));
        let other = tmp.join(format!("partial-{key}.{}.{}.3", dead.host, std::process::id()));
        fs::write(&theirs, b"half").unwrap();
        fs::write(&other, b"half").unwrap();
        assert!(matches!(store.claim(&key, false).unwrap(), Claim::Acquired(_)));
        assert!(!theirs.exists() && other.exists());
    }
}
