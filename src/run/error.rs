//! The errors of runs: a run that cannot go on ([`RunError`], [`NotFinite`]), a run file that
//! cannot be read or written ([`RunFileError`]), and [`Error`], which joins them with the
//! model's and the data's errors: what training, evaluation and prediction return.

use std::path::{Path, PathBuf};

use crate::data::DataError;
use crate::model::{ConfigError, InputError, LoadError, PersistError};
use crate::slide::SlideError;

/// A training, evaluation or prediction run that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The output folder already holds results, and `--resume` was not given.
    #[error("{path} already holds a run; pass --resume to continue it or choose another --out")]
    RunExists {
        /// The folder.
        path: PathBuf,
    },
    /// `--resume` or `--model` on a folder that is not a run or model folder.
    #[error("{path} is not a med-crossvit run or model folder: {reason}")]
    NotARun {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A model configuration whose widths contradict the data.
    #[error("the model config says {field} = {config}, but the data has {data}")]
    ConfigMismatch {
        /// The config field.
        field: &'static str,
        /// The config's value.
        config: usize,
        /// The data's value.
        data: usize,
    },
    /// A command-line option or setting whose value cannot be used.
    #[error("{option}: {why}")]
    BadOption {
        /// The option, e.g. `--alpha`.
        option: String,
        /// What is wrong and what it takes.
        why: String,
    },
    /// An unknown preset, device or other named choice.
    #[error("unknown {what} `{name}` (choose from: {choices})")]
    Unknown {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        name: String,
        /// The valid names.
        choices: String,
    },
    /// Another `train` process works on the run folder (it holds the folder's lock file).
    #[error(
        "{path} is in use by another `train` process (it holds the lock on {path}/.lock); \
         wait for it to end (the lock goes with the process, however it ends)"
    )]
    Locked {
        /// The run folder.
        path: PathBuf,
    },
    /// The processes of a distributed run cannot work together (a transport failure, a
    /// rank that disagrees, a setting that needs another build).
    #[error("distributed run: {message}")]
    Distributed {
        /// What went wrong, naming the rank where known.
        message: String,
    },
    /// An output that would overwrite a run or model folder, or files another command or
    /// person wrote (see [`run::outputs`](crate::run::outputs)).
    #[error(
        "{command}: refusing to write {path}: {reason}; choose another output, or pass --force \
         to write there anyway"
    )]
    Overwrite {
        /// The output given.
        path: PathBuf,
        /// The command writing it.
        command: &'static str,
        /// What it would overwrite.
        reason: String,
    },
    /// A checkpoint that cannot be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Training met a loss, gradient or prediction that is not a finite number: it stopped
    /// at once, writing nothing for the epoch (boxed: its text fields would make every
    /// `Result` of the crate larger).
    #[error(transparent)]
    NotFinite(Box<NotFinite>),
    /// Training stopped because its caller asked it to ([`progress::StopRequest`]): the
    /// epoch in progress was dropped, and the run folder holds the checkpoint of the last
    /// complete epoch, from which [`train::resume`] continues it.
    ///
    /// [`progress::StopRequest`]: crate::progress::StopRequest
    /// [`train::resume`]: crate::train::resume
    #[error(
        "training of {path} stopped on request after {epochs_done} complete epoch(s); \
         continue it with `train --resume {path}`"
    )]
    Stopped {
        /// The run folder (a fold's folder in cross-validation).
        path: PathBuf,
        /// Epochs complete and checkpointed in it.
        epochs_done: usize,
    },
    /// Metrics asked of predictions that are not all finite numbers: they would be
    /// meaningless (a c-index of 0, an AUC of 0.5), so none is computed.
    #[error(
        "metrics over non-finite predictions: {count} of {total} patient(s) have a NaN or \
         infinite output (first: patient `{first}`); the model has diverged"
    )]
    NonFinitePredictions {
        /// Patients whose outputs are not all finite.
        count: usize,
        /// Patients predicted.
        total: usize,
        /// The first such patient's id (or index).
        first: String,
    },
    /// A fold of a cross-validation run that does not fit with the first fold, so their
    /// models cannot be applied together as an ensemble.
    #[error(
        "{fold} cannot join the ensemble of {reference}: its {what} is {found}, but {expected} \
         there"
    )]
    FoldMismatch {
        /// The fold folder that differs.
        fold: PathBuf,
        /// The fold it was compared with (the first).
        reference: PathBuf,
        /// What differs (`task`, `classes`, `gene order`, `gene tokenizer`, …).
        what: String,
        /// The reference fold's value.
        expected: String,
        /// This fold's value.
        found: String,
    },
}

/// Where training met a loss, gradient or prediction that is not a finite number, the likely
/// cause, and what the run folder holds ([`RunError::NotFinite`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "{at}: {what} is not a finite number ({value}); training stopped.\n  likely cause: \
     {cause}\n  {resume}"
)]
pub struct NotFinite {
    /// Where: the fit, epoch and batch (e.g. `fold 0 (1 of 3), epoch 1, batch 2 of 4`).
    pub at: String,
    /// What was not finite (`the training loss`, `a gradient of the optimizer step`, `a
    /// validation prediction`).
    pub what: String,
    /// The value (or a count of the values) met.
    pub value: String,
    /// The likely cause, from the batch's inputs.
    pub cause: String,
    /// What the run folder holds now and how to go on.
    pub resume: String,
}

/// A file of a run folder (`config.json`, `metrics.json`, predictions, plots) that could not
/// be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not the JSON it should be.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl RunFileError {
    /// The error of an I/O failure on `path` (for `map_err`).
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Any error of a run: the model's, the data's, a run file's or the run's own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad input shapes.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Saving or loading failed.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Bad cohort data (boxed: its variants carry the file, line, slide, column and value at
    /// fault, which would make every `Result` of the crate as large).
    #[error(transparent)]
    Data(Box<DataError>),
    /// A run that cannot go on.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A run file (configuration, metrics, predictions) that cannot be read or written.
    #[error(transparent)]
    File(#[from] RunFileError),
    /// A whole-slide image that cannot be found or read, or tiles that cannot be placed on
    /// it (boxed, as `Data`).
    #[error(transparent)]
    Slide(Box<SlideError>),
}

impl From<SlideError> for Error {
    fn from(e: SlideError) -> Self {
        Self::Slide(Box::new(e))
    }
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Self::Data(Box::new(e))
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Config(e) => Self::Config(e),
            LoadError::Persist(e) => Self::Persist(e),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes `value` as pretty JSON to the run file `path`, atomically.
pub(crate) fn save_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<(), RunFileError> {
    crate::util::json::save(value, path).map_err(RunFileError::io(path))
}
