//! Small JSON files beside a model (labels, normalization), read and written with errors that
//! name the file.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DataError;

/// Writes `value` as pretty JSON to `path`, through a temporary file renamed into place: a
/// process killed while writing leaves the previous file (or none), never a truncated one
/// that a later `--resume` would take for complete.
pub(crate) fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), DataError> {
    let text = serde_json::to_string_pretty(value).expect("plain data always serializes");
    let mut tmp = path.to_path_buf();
    tmp.as_mut_os_string().push(".tmp");
    std::fs::write(&tmp, text + "\n").map_err(|e| DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Reads a JSON file written by [`save_json`].
pub(crate) fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        source,
    })
}
