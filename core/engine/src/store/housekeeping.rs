//! Keeping a shared store usable: the temporary files of writers that died (a process killed
//! mid-write, a disk that filled) are removed, and a run checks before it starts that it can
//! write every folder it will write.
//!
//! Every temporary name carries its writer: `tmp/<key>.<host>.<pid>.<n>` (an object being
//! written) and `tmp/partial-<key>.<host>.<pid>.<n>` (a training state being saved), and every
//! write happens under the writer's lease of `<key>`. A temporary is therefore garbage once its
//! writer is gone: a process of this host that no longer runs, or, for another host, a writer
//! that no longer holds a live lease of the key (and the file is older than a lease's expiry,
//! so a write that just started is never taken for garbage).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Store;
use super::host_name;
use crate::key::StageKey;
use crate::lease::{EXPIRES_AFTER, Holder, process_exists};
use ticketlab_api::{Error, Result};

/// The folders of a store that a run writes to.
pub const WRITTEN_FOLDERS: [&str; 5] = ["objects", "partial", "leases", "tmp", "active"];

/// A temporary file's key and writer, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Writer<'a> {
    key: &'a str,
    host: &'a str,
    pid: u32,
}

/// Parses `<key>.<host>.<pid>.<n>` or `partial-<key>.<host>.<pid>.<n>` (host names may hold
/// dots, so the name is read from both ends).
fn writer(name: &str) -> Option<Writer<'_>> {
    let stem = name.strip_prefix("partial-").unwrap_or(name);
    let key = stem.get(..64)?;
    StageKey::parse(key)?;
    let rest = stem.get(64..)?.strip_prefix('.')?;
    let mut parts = rest.rsplitn(3, '.');
    parts.next()?.parse::<u64>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next().filter(|h| !h.is_empty())?;
    Some(Writer { key, host, pid })
}

impl Store {
    /// Removes the temporary files `holder` (a writer found gone) left for `key`.
    pub(crate) fn remove_temporaries_of(&self, key: &StageKey, holder: &Holder) {
        let dir = self.root().join("tmp");
        let Ok(entries) = fs::read_dir(&dir) else { return };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(w) = name.to_str().and_then(writer) else { continue };
            if w.key == key.as_str() && w.host == holder.host && w.pid == holder.pid {
                remove_any(&entry.path());
            }
        }
    }

    /// Removes every temporary file whose writer is gone (see the module docs) and the leftovers
    /// of lease files being written; returns what was removed.
    pub fn remove_dead_temporaries(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let dir = self.root().join("tmp");
        for (path, name) in entries(&dir)? {
            let gone = match writer(&name) {
                Some(w) if w.host == host_name() => !process_exists(w.pid),
                Some(w) => {
                    let key = StageKey::parse(w.key).expect("checked by `writer`");
                    let holds = self
                        .lease_holder(&key)
                        .is_some_and(|h| h.host == w.host && h.pid == w.pid && !h.is_gone());
                    !holds && older_than_expiry(&path)
                }
                // Not a name ticketlab writes: left alone.
                None => false,
            };
            if gone {
                remove_any(&path);
                removed.push(path);
            }
        }
        // `leases/.new.*`, `.broken.*` and `<key>.beat.<pid>` live for milliseconds.
        for (path, name) in entries(&self.root().join("leases"))? {
            if !name.ends_with(".json") && older_than_expiry(&path) {
                remove_any(&path);
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Checks, creating nothing, that every folder a run writes can be written: each folder
    /// that exists, and for one that does not, the folder it would be created in. The error is
    /// the first folder that cannot be, with the reason.
    pub fn check_writable(&self) -> std::result::Result<(), (PathBuf, std::io::Error)> {
        for folder in std::iter::once(self.root().to_path_buf())
            .chain(WRITTEN_FOLDERS.iter().map(|f| self.root().join(f)))
        {
            let existing = folder.ancestors().find(|a| a.exists()).unwrap_or(&folder);
            probe_writable(existing).map_err(|e| (folder.clone(), e))?;
        }
        Ok(())
    }
}

/// Writes and removes a file in `folder`, creating the folder first if it is missing.
pub fn probe_writable(folder: &Path) -> std::io::Result<()> {
    let file = folder.join(format!(".ticketlab-write-check.{}", std::process::id()));
    fs::create_dir_all(folder)?;
    fs::write(&file, b"ok")?;
    fs::remove_file(&file)
}

/// The entries of `dir` with their names (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.path(), e.file_name().into_string().ok()?)))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn older_than_expiry(path: &Path) -> bool {
    let modified = fs::symlink_metadata(path).and_then(|m| m.modified());
    modified
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > EXPIRES_AFTER)
}

/// Removes a file or a folder (a half-written object), ignoring what is already gone.
fn remove_any(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_give_their_key_and_writer() {
        let key = "ab".repeat(32);
        let name = format!("partial-{key}.node1.cluster.org.4242.7");
        assert_eq!(
            writer(&name).unwrap(),
            Writer { key: &key, host: "node1.cluster.org", pid: 4242 }
        );
        assert_eq!(writer(&format!("{key}.h.1.0")).unwrap().host, "h");
        assert!(writer(&format!("{key}.1.0")).is_none(), "no host");
        assert!(writer("notes.txt").is_none());
        assert!(writer(&format!("{}.h.1.0", "zz".repeat(32))).is_none(), "not a key");
    }

    /// Another host's temporary goes once its writer holds no live lease of the key and the
    /// file is older than a lease's expiry; a fresh one, or one whose writer holds the lease,
    /// stays.
    #[test]
    fn temporaries_of_other_hosts_go_when_their_writer_holds_no_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let (held, free) = (StageKey::parse(&"ab".repeat(32)).unwrap(), "cd".repeat(32));
        let old = SystemTime::now() - EXPIRES_AFTER * 2;
        let make = |name: String, age: SystemTime| {
            let path = tmp.join(name);
            fs::write(&path, b"half").unwrap();
            fs::File::options().write(true).open(&path).unwrap().set_modified(age).unwrap();
            path
        };
        let orphan = make(format!("{free}.elsewhere.7.0"), old);
        let fresh = make(format!("partial-{free}.elsewhere.7.1"), SystemTime::now());
        let leased = make(format!("{held}.elsewhere.7.2"), old);
        let now = crate::lease::unix_now();
        let lease = store.lease_path(&held);
        fs::create_dir_all(lease.parent().unwrap()).unwrap();
        let holder = Holder { host: "elsewhere".into(), pid: 7, started: now, heartbeat: now };
        fs::write(&lease, serde_json::to_vec(&holder).unwrap()).unwrap();
        assert_eq!(store.remove_dead_temporaries().unwrap(), vec![orphan.clone()]);
        assert!(!orphan.exists() && fresh.exists() && leased.exists());
    }
}
