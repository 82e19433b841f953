//! Writing a file atomically: into a temporary file beside it, then renamed into place, so
//! that a process killed while writing leaves the previous file (or none), never a truncated
//! one. A failure removes the temporary file and returns the operating system's error; each
//! caller names the file in its own error type.

use std::io;
use std::path::{Path, PathBuf};

/// The temporary file beside `path` that [`write`] fills: `path` with `.tmp` appended
/// (`metrics.json` → `metrics.json.tmp`).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.to_path_buf();
    tmp.as_mut_os_string().push(".tmp");
    tmp
}

/// Writes `bytes` to `path` through [`temp_path`]`(path)` renamed into place.
///
/// # Errors
///
/// The operating system's error (a missing folder, a full disk); the temporary file is
/// removed.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    with_temp(
        path,
        &temp_path(path),
        |tmp| std::fs::write(tmp, bytes),
        |e| e,
    )
}

/// Fills `tmp` through `fill` (a writer that takes a path: an encoder, a tensor store), then
/// renames `tmp` onto `path`.
///
/// # Errors
///
/// `fill`'s error as it is, or `rename_error` of the rename's; either way `tmp` is removed.
pub(crate) fn with_temp<E>(
    path: &Path,
    tmp: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
    rename_error: impl FnOnce(io::Error) -> E,
) -> Result<(), E> {
    let result = fill(tmp).and_then(|()| std::fs::rename(tmp, path).map_err(rename_error));
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        assert_eq!(temp_path(&path), dir.path().join("a.json.tmp"));
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_failed_write_returns_the_error_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no such folder").join("a.json");
        let err = write(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!path.exists() && !temp_path(&path).exists());
    }

    #[test]
    fn a_failed_fill_or_rename_removes_the_temporary_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let tmp = dir.path().join("a.tmp.png");
        write(&path, b"old").unwrap();
        let err = with_temp(
            &path,
            &tmp,
            |tmp| {
                std::fs::write(tmp, b"partial")?;
                Err(io::Error::other("drawing failed"))
            },
            |e| e,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "drawing failed");
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // A rename onto a folder fails; its error goes through `rename_error`.
        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("inside"), b"").unwrap();
        let err = with_temp(
            &folder,
            &tmp,
            |tmp| std::fs::write(tmp, b"new"),
            |e| io::Error::other(format!("renaming: {e}")),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("renaming: "), "{err}");
        assert!(!tmp.exists());
    }
}
