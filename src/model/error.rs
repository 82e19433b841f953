//! The model's errors: a configuration that cannot build a model ([`ConfigError`]), inputs
//! whose shapes do not fit it ([`InputError`]), a model folder that cannot be saved or loaded
//! ([`PersistError`]). Each names the field, tensor or file at fault.

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

/// A model that cannot be loaded from its folder or weights file: an invalid configuration,
/// or weights that cannot be read or do not fit it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The configuration cannot build a model.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The weights file cannot be read or does not fit the configuration.
    #[error(transparent)]
    Persist(#[from] PersistError),
}
