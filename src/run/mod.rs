//! What a run or model folder holds, and the settings that made it.
//!
//! A run folder is written by training (`med-crossvit train`) and read by everything that
//! applies or reports on a model: [`RunConfig`] (`config.json`: the model's hyperparameters,
//! the [`TrainSettings`], where the data came from), [`ModelBundle`] (config, weights,
//! normalization and labels: all that is needed to apply a model to new data), the file
//! names ([`files`]), the rule that never overwrites results ([`outputs`]), the lock that
//! keeps one training process per folder ([`RunLock`]), and where a new run's model comes
//! from ([`ModelSpec`], [`TokenizerSpec`]).
//!
//! [`Error`] is the error of everything a run does (training, evaluation, prediction); the
//! model's and the data's errors convert into it.

mod bundle;
mod error;
mod folds;
mod lock;
pub mod outputs;
mod settings;
mod spec;

pub(crate) use bundle::check_companions;
pub use bundle::{DataSource, ModelBundle, RunConfig, files};
pub(crate) use error::save_json;
pub use error::{Error, NotFinite, Result, RunError, RunFileError};
pub use folds::FoldEnsemble;
pub(crate) use folds::same as same_in_folds;
pub use lock::{LOCK_FILE, RunLock};
pub use outputs::{
    HEATMAPS_CSV, HEATMAPS_DIR, HEATMAPS_HEADER, OutputKind, TOP_TILES_HEADER, TOPK_DIR,
    check_output, enclosing_run_folder, is_run_folder,
};
pub use settings::{Select, SurvivalSettings, Task, TrainSettings};
pub use spec::{
    ModelSpec, PRESETS, RNA_ONLY_WSI_DIM, TokenizerSpec, apply_tokenizer, check_model,
    resolve_model,
};
