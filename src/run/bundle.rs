//! The run folder: [`RunConfig`] (`config.json`) and [`ModelBundle`], everything needed to
//! apply a trained model to new data.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::settings::{Task, TrainSettings};
use crate::data::{CohortColumns, DataError, LabelMap, Normalization, TimeBins};
use crate::model::{ConfigError, MedCrossViT, MedCrossViTConfig};
use crate::run::{Error, RunError};

/// File names in a run or model folder.
pub mod files {
    /// Model and training settings.
    pub const CONFIG: &str = "config.json";
    /// Expression normalization fitted on the training split.
    pub const NORMALIZATION: &str = "normalization.json";
    /// Class names (or survival bins).
    pub const LABELS: &str = "labels.json";
    /// One row per epoch.
    pub const METRICS_CSV: &str = "metrics.csv";
    /// Validation metrics of the best checkpoint.
    pub const METRICS_JSON: &str = "metrics.json";
    /// Test metrics of the best checkpoint, when a test split exists.
    pub const TEST_METRICS_JSON: &str = "test_metrics.json";
    /// Cross-validation summary.
    pub const CV_JSON: &str = "cv.json";
    /// Cross-validation: every fold's validation predictions, one row per patient.
    pub const CV_PREDICTIONS_CSV: &str = "cv_predictions.csv";
    /// The split the run used (patient ids per side), in the splits-file format.
    pub const SPLITS_CSV: &str = "splits.csv";
    /// Predictions, one row per patient.
    pub const PREDICTIONS_CSV: &str = "predictions.csv";
    /// A fold ensemble's metrics of each fold (`evaluate --model CV_RUN`).
    pub const METRICS_FOLDS_JSON: &str = "metrics_folds.json";
    /// A fold ensemble's predictions of each fold, one row per fold and patient.
    pub const PREDICTIONS_FOLDS_CSV: &str = "predictions_folds.csv";
    /// Predictions, one row per slide (`--per-slide`).
    pub const PREDICTIONS_SLIDES_CSV: &str = "predictions_slides.csv";
    /// TensorBoard event files of the training curves (`tensorboard/fold_K` per fold).
    pub const TENSORBOARD: &str = "tensorboard";
    /// Loss curves.
    pub const LOSS_PNG: &str = "loss.png";
    /// Validation metric curves.
    pub const METRIC_PNG: &str = "metric.png";
    /// Survival: Kaplan–Meier curves of the risk groups (of the validation patients; of the
    /// pooled out-of-fold predictions in a cross-validation folder).
    pub const KM_PNG: &str = "km.png";
    /// Classification: one-vs-rest ROC curves of the validation patients (pooled in a
    /// cross-validation folder).
    pub const ROC_PNG: &str = "roc.png";
    /// Classification: the confusion matrix, likewise.
    pub const CONFUSION_PNG: &str = "confusion.png";
}

/// Where the training data came from, so that `--resume` needs nothing but the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// The cohort CSV.
    pub csv: PathBuf,
    /// The features directory.
    pub features_dir: PathBuf,
    /// The features dataset name, if given.
    pub features_key: Option<String>,
    /// Whether slides with missing files were skipped.
    pub skip_missing: bool,
}

impl DataSource {
    /// Makes the cohort CSV and the features directory absolute (against the working
    /// directory), as a run folder records them: `train --resume` then works from any folder.
    pub fn absolutize(&mut self) {
        absolutize(&mut self.csv);
        absolutize(&mut self.features_dir);
    }
}

// Here rather than in settings.rs: the paths a run folder records are this module's concern.
impl TrainSettings {
    /// Makes the splits file and folder and the TensorBoard folder absolute (against the
    /// working directory), as a run folder records them.
    pub fn absolutize_paths(&mut self) {
        for path in [
            &mut self.splits_csv,
            &mut self.splits_dir,
            &mut self.tensorboard,
        ]
        .into_iter()
        .flatten()
        {
            absolutize(path);
        }
    }
}

/// `path` made absolute against the working directory: resolved (`..` and links) when it
/// exists, else lexically; left as it is when neither works. An empty path (no features
/// folder, for expression alone) stays empty.
fn absolutize(path: &mut PathBuf) {
    if path.as_os_str().is_empty() {
        return;
    }
    if let Ok(absolute) = path.canonicalize().or_else(|_| std::path::absolute(&*path)) {
        *path = absolute;
    }
}

/// A run folder's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model's hyperparameters.
    pub model: MedCrossViTConfig,
    /// The training settings.
    pub training: TrainSettings,
    /// The CSV column names.
    pub columns: CohortColumns,
    /// The training data (absent for imported models).
    #[serde(default)]
    pub data: Option<DataSource>,
    /// Survival time bins (survival task).
    #[serde(default)]
    pub survival_bins: Option<TimeBins>,
    /// Cross-validation folds (the parent folder of a cross-validated run).
    #[serde(default)]
    pub folds: Option<usize>,
}

impl RunConfig {
    /// The configuration of a model folder that records no training (an imported model):
    /// default settings with bags as long as the model's positional embedding, default
    /// column names.
    pub fn for_model(model: MedCrossViTConfig) -> Self {
        Self {
            training: TrainSettings {
                bags: crate::data::BagSettings {
                    bag_size: model.wsi_num_tiles,
                    ..Default::default()
                },
                ..TrainSettings::default()
            },
            model,
            columns: CohortColumns::default(),
            data: None,
            survival_bins: None,
            folds: None,
        }
    }

    /// Reads `dir/config.json` and checks every field (see [`validate`](Self::validate)): run
    /// folders are copied and edited by hand, and a bad value found only later would panic,
    /// hang or index out of bounds.
    ///
    /// # Errors
    ///
    /// [`RunError::NotARun`] when the file is missing or is not a run configuration;
    /// [`DataError::BadField`] naming the file and the first field whose value cannot work.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(files::CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::NotARun {
            path: dir.to_path_buf(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| RunError::NotARun {
            path: dir.to_path_buf(),
            reason: format!("{}: {e}", path.display()),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    /// Checks the training settings, the model configuration, the survival time bins and the
    /// fold count, alone and against each other; `path` is the file they came from, named in
    /// the error.
    ///
    /// # Errors
    ///
    /// [`DataError::BadField`] naming `path` and the first bad field (as a JSON path such as
    /// `training.batch_size` or `model.dropout`).
    pub fn validate(&self, path: &Path) -> Result<(), DataError> {
        let checks: [Check; 4] = [
            Self::check_parts,
            Self::check_agreement,
            Self::check_bins,
            Self::check_survival,
        ];
        for check in checks {
            check(self).map_err(|fault| match fault {
                Fault::Field(field, reason) => DataError::bad_field(path, &field, reason),
                Fault::Other(e) => e,
            })?;
        }
        Ok(())
    }

    /// The training settings and the model configuration, each alone (and the bag size
    /// against the model's positional embedding).
    fn check_parts(&self) -> Result<(), Fault> {
        if let Err(e) = self.training.validate() {
            return Err(match e {
                DataError::Setting { setting, message } => {
                    Fault::Field(format!("training.{setting}"), message)
                }
                other => Fault::Other(other),
            });
        }
        if let Err(e) = super::check_model(&self.model, self.training.bags.bag_size) {
            let (field, reason) = match e {
                ConfigError::Zero { field } => (field, "must be at least 1, got 0".to_string()),
                ConfigError::Probability { field, value } => {
                    (field, format!("must lie in [0, 1), got {value}"))
                }
                ConfigError::Inconsistent { field, reason } => (field, reason),
                other => ("model", other.to_string()),
            };
            return fault(&format!("model.{field}"), reason);
        }
        Ok(())
    }

    /// The gene count, the column names and the fold count.
    fn check_agreement(&self) -> Result<(), Fault> {
        let model = &self.model;
        if let Some(k) = self.training.top_genes
            && k != model.rna_num_genes
        {
            return fault(
                "training.top_genes",
                format!(
                    "{k} genes, but the model takes model.rna_num_genes = {}",
                    model.rna_num_genes
                ),
            );
        }
        for (field, name) in [
            ("columns.slide", &self.columns.slide),
            ("columns.label", &self.columns.label),
        ] {
            if name.trim().is_empty() {
                return fault(field, "names no column".into());
            }
        }
        if let Some(k) = self.folds
            && k < 2
        {
            return fault(
                "folds",
                format!("cross-validation needs at least 2 folds, got {k}"),
            );
        }
        Ok(())
    }

    /// The survival time bins, when saved: finite, increasing, one per model output.
    fn check_bins(&self) -> Result<(), Fault> {
        let Some(bins) = &self.survival_bins else {
            return Ok(());
        };
        let edges = &bins.edges;
        let field = "survival_bins.edges";
        if edges.len() < 2 {
            return fault(
                field,
                format!("needs at least 2 edges (one bin), got {}", edges.len()),
            );
        }
        if let Some(e) = edges.iter().find(|e| !e.is_finite()) {
            return fault(field, format!("must be finite numbers, got {e}"));
        }
        if let Some(w) = edges.windows(2).find(|w| w[0] >= w[1]) {
            return fault(
                field,
                format!(
                    "must increase strictly, but {} is followed by {}",
                    w[0], w[1]
                ),
            );
        }
        if bins.len() != self.model.num_classes {
            return fault(
                field,
                format!(
                    "{} edges make {} bins, but the model has model.num_classes = {} outputs",
                    edges.len(),
                    bins.len(),
                    self.model.num_classes
                ),
            );
        }
        Ok(())
    }

    /// A survival run's bin count against the model, and its bins present.
    fn check_survival(&self) -> Result<(), Fault> {
        if self.training.task != Task::Survival {
            return Ok(());
        }
        if self.training.survival.bins != self.model.num_classes {
            return fault(
                "training.survival.bins",
                format!(
                    "{} bins, but the model has model.num_classes = {} outputs",
                    self.training.survival.bins, self.model.num_classes
                ),
            );
        }
        // The parent folder of a cross-validation run has no bins: each fold fits its own.
        if self.survival_bins.is_none() && self.folds.is_none() {
            return fault(
                "survival_bins",
                "a survival model needs its time bins; the field is missing".into(),
            );
        }
        Ok(())
    }

    /// Writes `dir/config.json`.
    ///
    /// # Errors
    ///
    /// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the file.
    pub fn save(&self, dir: &Path) -> Result<(), super::RunFileError> {
        super::save_json(self, &dir.join(files::CONFIG))
    }
}

/// What [`RunConfig::validate`] found wrong: a field of `config.json` (as a JSON path) and
/// why, or another error of the data.
enum Fault {
    Field(String, String),
    Other(DataError),
}

/// One of the checks of [`RunConfig::validate`].
type Check = fn(&RunConfig) -> Result<(), Fault>;

/// The fault of a bad `field`.
fn fault(field: &str, reason: String) -> Result<(), Fault> {
    Err(Fault::Field(field.to_string(), reason))
}

/// A trained model with what it needs to read new data: its configuration, weights,
/// expression normalization, class names and, for survival, time bins.
#[derive(Debug)]
pub struct ModelBundle {
    /// The folder's configuration.
    pub config: RunConfig,
    /// The model, on the device it was loaded to.
    pub model: MedCrossViT,
    /// Expression normalization.
    pub normalization: Normalization,
    /// Class names (for survival: one per time bin).
    pub labels: LabelMap,
}

impl ModelBundle {
    /// Loads a run or model folder (written by `train` or `import-torch`) onto `device`.
    ///
    /// # Errors
    ///
    /// [`RunError::NotARun`] for a folder without `config.json`; the errors of
    /// [`RunConfig::load`], [`Normalization::load`] and [`LabelMap::load`];
    /// [`DataError::BadField`] when the normalization or the class names do not fit the model;
    /// the errors of loading the weights. Each file is checked before anything is computed.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let config = RunConfig::load(dir)?;
        if config.folds.is_some() {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
                reason: "it is a cross-validation summary; pass one of its fold_* folders".into(),
            }
            .into());
        }
        let normalization = Normalization::load(dir.join(files::NORMALIZATION))?;
        let labels = LabelMap::load(dir.join(files::LABELS))?;
        check_companions(dir, &config.model, &normalization, &labels)?;
        // The weights come last: they are the slowest to read, and the files above decide
        // whether the folder can be used at all.
        let model = MedCrossViT::from_weights_file(
            &config.model,
            dir.join(crate::model::WEIGHTS_FILE),
            device,
        )?;
        Ok(Self {
            config,
            model,
            normalization,
            labels,
        })
    }

    /// The task the model was trained for.
    pub fn task(&self) -> Task {
        self.config.training.task
    }
}

/// Checks `normalization.json` and `labels.json` of the folder `dir` against its model: one
/// mean and deviation per gene, one class name per output.
///
/// # Errors
///
/// [`DataError::BadField`] naming the file and field that does not fit the model.
pub(crate) fn check_companions(
    dir: &Path,
    model: &MedCrossViTConfig,
    normalization: &Normalization,
    labels: &LabelMap,
) -> Result<(), DataError> {
    if normalization.mean.len() != model.rna_num_genes {
        return Err(DataError::bad_field(
            dir.join(files::NORMALIZATION),
            "mean",
            format!(
                "{} entries, but the model (config.json model.rna_num_genes) has {} genes",
                normalization.mean.len(),
                model.rna_num_genes
            ),
        ));
    }
    if labels.len() != model.num_classes {
        return Err(DataError::bad_field(
            dir.join(files::LABELS),
            "classes",
            format!(
                "{} classes, but the model (config.json model.num_classes) has {} outputs",
                labels.len(),
                model.num_classes
            ),
        ));
    }
    Ok(())
}
