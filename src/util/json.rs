//! Small JSON files (run configuration, metrics, labels, normalization), written through a
//! temporary file renamed into place and read back; callers wrap the failure in their own
//! error, which names the file.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a JSON file could not be read.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// Reading failed.
    Io(std::io::Error),
    /// The text is not the JSON expected.
    Json(serde_json::Error),
}

/// Writes `value` as pretty JSON (one trailing newline) to `path` atomically: a process
/// killed while writing leaves the previous file (or none), never a truncated one that a
/// later `--resume` would take for complete.
pub(crate) fn save<T: Serialize>(value: &T, path: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain data always serializes");
    super::atomic::write(path, (text + "\n").as_bytes())
}

/// Reads a JSON file written by [`save`].
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(LoadError::Io)?;
    serde_json::from_str(&text).map_err(LoadError::Json)
}
