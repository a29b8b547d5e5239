//! Small file helpers that attach the path to every I/O error.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Writes `contents` to `path`, creating its parent directories.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}

/// Writes `value` as pretty JSON with a trailing newline.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("{}: cannot serialise: {e}", path.display())))?;
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
