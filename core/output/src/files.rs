//! Small file helpers: I/O that attaches the path to every error, and safe file names.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use ticketlab_api::{Error, Result};

/// Writes `contents` to `path`, creating its parent directories.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}

/// Writes `value` as pretty JSON with a trailing newline.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| Error::Output {
        file: path.display().to_string(),
        message: format!("cannot serialise: {e}"),
    })?;
    s.push('\n');
    write(path, s)
}

/// Reads a file as text.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Reads and parses a JSON file, naming the file on failure.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_str(&read(path)?).map_err(|e| {
        Error::data(
            path,
            format!("not a valid ticketlab run file ({e}); rerun the experiment to rewrite it"),
        )
    })
}

/// `name` as part of a file name: letters, digits, `-`, `_` and `.` are kept and anything else
/// becomes `_`. When that changed the name, or the name is longer than 80 bytes, the first 8
/// hex digits of its SHA-256 are appended (and the rest cut to 80), so distinct stage names never
/// share a file and a sweep's long names stay within file-name limits.
pub(crate) fn file_safe(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let safe: String = name.chars().map(|c| if safe_char(c) { c } else { '_' }).collect();
    if safe == name && name.len() <= 80 {
        return safe;
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    format!("{}-{hash}", safe.chars().take(80).collect::<String>())
}

/// Whether `c` may appear in the file names ticketlab writes.
fn safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether `name` is a plain file name inside a folder (no path, no hidden file).
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(safe_char)
}
