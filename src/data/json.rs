//! Small JSON files beside a model (labels, normalization), read and written with errors that
//! name the file.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DataError;
use crate::util::json::LoadError;

/// Writes `value` as pretty JSON to `path` atomically ([`crate::util::json::save`]); a
/// failure (a full disk) names the file asked for and leaves no temporary file behind.
pub(crate) fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), DataError> {
    crate::util::json::save(value, path).map_err(|e| DataError::io(path, e))
}

/// Reads a JSON file written by [`save_json`].
pub(crate) fn load_json<T: DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    crate::util::json::load(path).map_err(|e| match e {
        LoadError::Io(e) => DataError::io(path, e),
        LoadError::Json(source) => DataError::Json {
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_names_the_file_asked_for_and_leaves_no_temporary_file() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let tmp = dir.path().join("metrics.json.tmp");
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let err = save_json(&[1.0, 2.0], &path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: No space left on device (os error 28)", path.display())
        );
        assert!(!tmp.exists() && tmp.symlink_metadata().is_err() && !path.exists());
        // CSV and text files (predictions, the report) likewise.
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let err = crate::util::atomic::write(&path, b"x")
            .map_err(|e| DataError::io(&path, e))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: No space left on device (os error 28)", path.display())
        );
    }
}
