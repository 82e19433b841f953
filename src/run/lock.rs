//! [`RunLock`]: one `train` process per run folder.
//!
//! Two processes writing one run folder would interleave their checkpoints and metrics. The
//! lock is an OS advisory lock (`flock` on Unix) on `RUN/.lock`: the OS releases it when the
//! process ends, however it ends, so a run killed with SIGKILL can be resumed at once, with no
//! stale lock file to remove by hand. The file itself stays; only the lock on it matters.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::RunFileError;
use crate::run::{Error, RunError};

/// The lock file's name in a run folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: Option<File>,
}

impl RunLock {
    /// Takes the lock of the run folder `dir` (which must exist), without waiting.
    ///
    /// On a file system without advisory locks the run goes on unlocked: refusing to train
    /// there would be worse than the risk the lock guards against.
    ///
    /// # Errors
    ///
    /// [`RunError::Locked`] when another process holds it; [`RunFileError::Io`] naming the lock
    /// file when it cannot be opened.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RunFileError::io(&path)(e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: Some(file) }),
            Err(TryLockError::WouldBlock) => Err(RunError::Locked {
                path: dir.to_path_buf(),
            }
            .into()),
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                Ok(Self { _file: None })
            }
            Err(TryLockError::Error(e)) => Err(RunFileError::io(&path)(e).into()),
        }
    }
}
