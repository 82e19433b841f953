//! Error types, split by concern and joined into [`Error`].
//!
//! Every error names what was wrong: the configuration field, the tensor and the
//! expected versus received shape, or the file.

use std::path::{Path, PathBuf};

/// A model configuration that cannot build a model.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A size or count that must be at least 1 was 0.
    #[error("config field `{field}` must be at least 1, got 0")]
    Zero {
        /// The configuration field at fault.
        field: &'static str,
    },
    /// A probability outside `[0, 1)`.
    #[error("config field `{field}` must lie in [0, 1), got {value}")]
    Probability {
        /// The configuration field at fault.
        field: &'static str,
        /// The value that was given.
        value: f64,
    },
    /// Values that are valid alone but contradict each other.
    #[error("config field `{field}`: {reason}")]
    Inconsistent {
        /// The configuration field at fault.
        field: &'static str,
        /// Why the value does not fit the rest of the configuration.
        reason: String,
    },
    /// A configuration file that could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A configuration file that is not valid JSON for this configuration.
    #[error("config file {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
}

/// Inputs whose shapes do not fit the model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    /// A tensor dimension differs from what the model was built for.
    #[error("{tensor}: dimension {dim} ({meaning}) should be {expected}, got {got}")]
    Dimension {
        /// Which input tensor.
        tensor: &'static str,
        /// The dimension index.
        dim: usize,
        /// What that dimension means.
        meaning: &'static str,
        /// The size the model expects.
        expected: usize,
        /// The size that came.
        got: usize,
    },
    /// A bag that has more tiles than the positional embedding covers.
    #[error(
        "tiles: a bag of {got} tiles is longer than wsi_num_tiles = {max}, which the positional \
         embedding covers (turn `wsi_pos_embedding` off for bags of any size)"
    )]
    TooManyTiles {
        /// The number of tiles that came.
        got: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A bag with no tile at all.
    #[error("tiles: a bag needs at least one tile, got 0")]
    EmptyBag,
    /// A sample marked as having neither modality.
    #[error("sample {sample} of the batch has neither tiles nor expression")]
    NoModality {
        /// Its index in the batch.
        sample: usize,
    },
}

/// Saving or loading a model folder failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The weights file could not be written or read.
    #[error("weights file {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The weights file does not match the configuration beside it.
    #[error("weights file {path} does not match its config: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The first missing, unused or misshapen tensors.
        message: String,
    },
}

impl PersistError {
    /// The error of an I/O failure on `path` (for `map_err`).
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

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
    /// person wrote (see [`train::outputs`](crate::train::outputs)).
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

/// Any error of this crate.
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
    Data(Box<crate::data::DataError>),
    /// A run that cannot go on.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A PyTorch checkpoint that cannot be imported.
    #[error(transparent)]
    Import(#[from] crate::interop::ImportError),
    /// A GDC download that cannot be turned into a cohort (boxed, as `Data`).
    #[error(transparent)]
    Gdc(Box<crate::cohort::gdc::GdcError>),
}

impl From<crate::cohort::gdc::GdcError> for Error {
    fn from(e: crate::cohort::gdc::GdcError) -> Self {
        Self::Gdc(Box::new(e))
    }
}

impl From<crate::data::DataError> for Error {
    fn from(e: crate::data::DataError) -> Self {
        Self::Data(Box::new(e))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
