//! The run folder: [`RunConfig`] (`config.json`) and [`ModelBundle`], everything needed to
//! apply a trained model to new data.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::settings::{Task, TrainSettings};
use super::survival::TimeBins;
use crate::data::{CohortColumns, DataError, LabelMap, Normalization};
use crate::error::{Error, RunError};
use crate::model::{MedCrossViT, MedCrossViTConfig};

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
    /// Loss curves.
    pub const LOSS_PNG: &str = "loss.png";
    /// Validation metric curves.
    pub const METRIC_PNG: &str = "metric.png";
}

/// Where the training data came from, so that `--resume` needs nothing but the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A run folder's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Reads `dir/config.json`.
    ///
    /// # Errors
    ///
    /// [`RunError::NotARun`] when the file is missing or is not a run configuration.
    pub fn load(dir: &Path) -> Result<Self, RunError> {
        let path = dir.join(files::CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::NotARun {
            path: dir.to_path_buf(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| RunError::NotARun {
            path: dir.to_path_buf(),
            reason: format!("{}: {e}", path.display()),
        })
    }

    /// Writes `dir/config.json`.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] naming the file.
    pub fn save(&self, dir: &Path) -> Result<(), DataError> {
        crate::data::json::save_json(self, &dir.join(files::CONFIG))
    }
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
    /// [`RunError::NotARun`] for a folder without `config.json`; the errors of loading the
    /// weights, `normalization.json` and `labels.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, Error> {
        let config = RunConfig::load(dir)?;
        if config.folds.is_some() {
            return Err(RunError::NotARun {
                path: dir.to_path_buf(),
                reason: "it is a cross-validation summary; pass one of its fold_* folders".into(),
            }
            .into());
        }
        let model = MedCrossViT::load(dir, device)?;
        let normalization = Normalization::load(dir.join(files::NORMALIZATION))?;
        let labels = LabelMap::load(dir.join(files::LABELS))?;
        if labels.len() != config.model.num_classes {
            return Err(RunError::ConfigMismatch {
                field: "num_classes",
                config: config.model.num_classes,
                data: labels.len(),
            }
            .into());
        }
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
