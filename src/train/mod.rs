//! Training: classification and survival, patient-level splits and cross-validation,
//! resumable checkpoints, on one device, several, or the processes of an MPI job.
//!
//! [`train`] is what `med-crossvit train` runs; [`resume`] continues a run folder. Progress
//! is reported through [`Event`]s. What a run folder holds is [`run`](crate::run)'s; the
//! predictions, metrics and plots of each fit are [`eval`](crate::eval)'s, which also applies
//! a finished run to a new cohort ([`eval::evaluate`](crate::eval::evaluate)).

mod checkpoint;
mod cv;
mod finish;
mod finite;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod parallel;
mod plan;
mod pooled;
mod prepare;
mod resume;
mod saved;
mod schedule;
mod step;
pub mod tensorboard;
mod trainer;
mod validate;

pub use checkpoint::{LoopState, PAUSE_MARKER_VAR, PAUSE_VAR};
pub use finish::FitReport;
pub use finite::POISON_VAR;
pub use parallel::{Alone, Parallel, ProcessGroup};
pub use plan::{
    Outcomes, PLACEHOLDER_GENES, Prepared, check_cohort, fit_normalization, prepare, splits,
    targets,
};
pub use pooled::OutOfFold;
pub use prepare::Fit;
pub use resume::{Relocation, resume, resume_parallel, resume_relocated};
pub use schedule::learning_rate;
pub use trainer::{fit, fit_parallel};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use crate::data::CohortColumns;
use crate::eval::{EpochRow, Metrics};
use crate::run::{
    DataSource, Error, ModelSpec, OutputKind, RunError, RunLock, Select, TokenizerSpec,
    TrainSettings, check_output, files,
};

/// Progress of a training run.
#[derive(Debug)]
pub enum Event<'a> {
    /// A fit begins.
    FitStart {
        /// Which fit (e.g. `fold 1 (2 of 5)`: folds are numbered from 0, as their folders).
        label: &'a str,
        /// Epochs planned.
        epochs: usize,
        /// Batches per epoch.
        batches: usize,
        /// Training slides.
        train_slides: usize,
        /// Validation slides.
        val_slides: usize,
        /// Training patients.
        train_patients: usize,
        /// Validation patients.
        val_patients: usize,
        /// The validation metric that chooses the best epoch and stops early, as
        /// `metrics.csv` names it (`val_auc`, `val_c_index`).
        monitor: String,
        /// Which epoch's weights the run keeps: the best on `monitor`, or the last.
        select: Select,
        /// Epochs without a better `monitor` before stopping (0: never).
        patience: usize,
        /// Epochs already done (a resumed fit).
        epochs_done: usize,
    },
    /// A training batch is done.
    Batch {
        /// Epoch, from 1.
        epoch: usize,
        /// Batch, from 1.
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// Mean training loss so far this epoch.
        loss: f64,
        /// Bags per second so far this epoch.
        bags_per_sec: f64,
    },
    /// An epoch is done and validated.
    Epoch {
        /// Which fit.
        label: &'a str,
        /// Its row of `metrics.csv`.
        row: &'a EpochRow,
        /// Whether it is the best so far on the selection metric (saved as `model.bpk` unless
        /// the run keeps the last epoch).
        best: bool,
    },
    /// Anything else worth a line.
    Message(String),
}

/// A training run to start.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The cohort.
    pub data: DataSource,
    /// CSV column names.
    pub columns: CohortColumns,
    /// The model's hyperparameters.
    pub model: ModelSpec,
    /// The gene tokenizer; `None` keeps the model configuration's (dense for presets).
    pub tokenizer: Option<TokenizerSpec>,
    /// Training settings.
    pub settings: TrainSettings,
    /// Patient-level stratified cross-validation with this many folds (with
    /// `settings.splits_dir`, one fold per splits file instead).
    pub folds: Option<usize>,
    /// The run folder (must not hold a run yet).
    pub out: PathBuf,
    /// Stop after this many epochs as if interrupted (tests and demos).
    pub stop_after: Option<usize>,
    /// Write into `out` although it is not empty or lies inside another run (never over an
    /// existing run: see [`outputs`](crate::run::outputs)).
    pub force: bool,
}

/// One fold's (or the single split's) result.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    /// Fold number, from 0 as the `fold_K` folders (0 for a single split).
    pub fold: usize,
    /// The fold's run folder.
    pub out: PathBuf,
    /// Which checkpoint `metrics` (and `model.bpk`) are of: `best` or `last`.
    pub checkpoint: Select,
    /// The epoch of that checkpoint.
    pub epoch: usize,
    /// The best epoch on the validation metric.
    pub best_epoch: usize,
    /// The last epoch trained.
    pub last_epoch: usize,
    /// Validation metrics of the kept checkpoint, with their intervals.
    pub metrics: Metrics,
    /// Validation metrics of the best epoch (its row of `metrics.csv`).
    pub best: Metrics,
    /// Validation metrics of the last epoch (its row of `metrics.csv`).
    pub last: Metrics,
    /// Test metrics, when there is a test split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Metrics>,
}

/// The mean and the population standard deviation of each scalar metric over the folds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Mean over the folds.
    pub mean: BTreeMap<String, f64>,
    /// Population standard deviation over the folds.
    pub std: BTreeMap<String, f64>,
}

impl Spread {
    fn of<'a>(metrics: impl Iterator<Item = &'a Metrics>) -> Self {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for m in metrics {
            for (name, v) in m.scalars() {
                if let Some(v) = v {
                    values.entry(name.to_string()).or_default().push(v);
                }
            }
        }
        let mut spread = Self::default();
        for (name, v) in values {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            spread.mean.insert(name.clone(), m);
            spread.std.insert(name, var.sqrt());
        }
        spread
    }
}

/// What a training run ended with.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Which checkpoint of each fold the figures are of: `best` (chosen on the validation
    /// patients they are reported on: optimistic without a test split) or `last`.
    pub checkpoint: Select,
    /// The validation metric that chose the best epoch, as `metrics.csv` names it.
    pub selection_metric: String,
    /// One entry per fold (one for a single split).
    pub folds: Vec<FoldResult>,
    /// Mean of each scalar metric over the folds, of the kept checkpoints.
    pub mean: BTreeMap<String, f64>,
    /// Population standard deviation of each scalar metric over the folds.
    pub std: BTreeMap<String, f64>,
    /// Mean and standard deviation over the folds of the best epochs' validation rows.
    pub best: Spread,
    /// Mean and standard deviation over the folds of the last epochs' validation rows.
    pub last: Spread,
    /// Cross-validation: the metrics of every fold's validation predictions pooled (each
    /// patient once), the rows of `cv_predictions.csv`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooled: Option<Metrics>,
    /// Whether every fold finished (false after `stop_after`).
    #[serde(skip)]
    pub finished: bool,
}

impl TrainSummary {
    fn of(folds: Vec<FoldResult>, settings: &TrainSettings, finished: bool) -> Self {
        let kept = Spread::of(folds.iter().map(|f| &f.metrics));
        Self {
            checkpoint: settings.select,
            selection_metric: settings.monitor_column(),
            best: Spread::of(folds.iter().map(|f| &f.best)),
            last: Spread::of(folds.iter().map(|f| &f.last)),
            folds,
            mean: kept.mean,
            std: kept.std,
            pooled: None,
            finished,
        }
    }
}

fn is_run(dir: &Path) -> bool {
    dir.join(files::CONFIG).exists()
}

/// Trains a model (one split, or `folds` cross-validation folds in `out/fold_K`).
///
/// # Errors
///
/// [`RunError::RunExists`] when `out` already holds a run (nothing is overwritten);
/// [`RunError::Overwrite`] when `out` is a folder holding other files or lies inside a run
/// folder, unless `request.force` ([`outputs`](crate::run::outputs)); [`RunError::Locked`] when another process
/// is training into `out`; the data,
/// configuration, checkpoint and I/O errors of the run.
pub fn train(
    request: &TrainRequest,
    device: &Device,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    train_parallel(request, &Parallel::single(device), events)
}

/// [`train`] spread over the devices and processes of `parallel` (see [`parallel`]): every
/// process runs this with the same request; the writing process (rank 0) alone takes the
/// lock and writes the run folder.
///
/// # Errors
///
/// As [`train`]; a failure of the transport between processes.
pub fn train_parallel(
    request: &TrainRequest,
    parallel: &Parallel<'_>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<TrainSummary, Error> {
    request.settings.validate()?;
    if parallel.group.is_writer() {
        // A run still in progress says so, rather than suggesting --resume.
        if is_run(&request.out)
            && let Err(locked @ Error::Run(RunError::Locked { .. })) =
                RunLock::acquire(&request.out)
        {
            return Err(locked);
        }
        check_output(&request.out, OutputKind::Run, request.force)?;
        if let Some(dir) = &request.settings.tensorboard {
            tensorboard::check_fresh_tree(dir)?;
        }
    }
    // The run folder records where its data is: absolute paths, so that `--resume` works
    // from any folder.
    let mut request = request.clone();
    request.data.absolutize();
    request.settings.absolutize_paths();
    cv::train_splits(&request, cv::Resumed::default(), parallel, events)
}
