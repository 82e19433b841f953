//! [`TrainSettings`]: everything about a training run except the model's hyperparameters.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::{BagSettings, DataError, MissingModality, Modalities, NormalizeMethod, Unit};

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One label per slide; cross-entropy; accuracy, balanced accuracy, AUC.
    #[default]
    Classification,
    /// Survival time and censorship per slide; discrete-time hazards; concordance index.
    Survival,
}

/// Which epoch's weights a run keeps as its model (`model.bpk`) and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The epoch with the best validation metric ([`TrainSettings::monitor`]): optimistic
    /// when the same validation patients are then reported on (no test split).
    #[default]
    Best,
    /// The last epoch trained (the published convention of cross-validation without a test
    /// split, e.g. MCAT's tables).
    Last,
}

impl Select {
    /// `best` or `last`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Last => "last",
        }
    }

    /// The epoch kept, in words: `the best epoch on {metric}` or `the last epoch`.
    pub fn kept(self, metric: &str) -> String {
        match self {
            Self::Best => format!("the best epoch on {metric}"),
            Self::Last => "the last epoch".to_string(),
        }
    }
}

/// Survival columns and loss settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurvivalSettings {
    /// Column of survival times (any unit; months by convention). Default `survival_months`.
    pub time_column: String,
    /// Column of censorship: 1 = censored (no event observed), 0 = event. Default `censorship`.
    pub censorship_column: String,
    /// Number of time bins (the model's outputs). Default 4 (quartiles).
    pub bins: usize,
    /// Weight of the uncensored term in the loss, in `[0, 1]`. Default 0.
    pub alpha: f64,
}

impl Default for SurvivalSettings {
    fn default() -> Self {
        Self {
            time_column: "survival_months".into(),
            censorship_column: "censorship".into(),
            bins: 4,
            alpha: 0.0,
        }
    }
}

/// Training settings. Saved in the run folder's `config.json` under `training`, one flat
/// object (the [`BagSettings`] beside the others); a field it does not know is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct TrainSettings {
    /// The task. Default classification.
    pub task: Task,
    /// Survival settings (used by the survival task).
    pub survival: SurvivalSettings,
    /// Epochs. Default 20.
    pub epochs: usize,
    /// Bags per batch. Default 16.
    pub batch_size: usize,
    /// How slides are cut into bags (`bag_size`, `max_patches_total`; their defaults are
    /// [`BagSettings::default`]'s).
    #[serde(flatten)]
    pub bags: BagSettings,
    /// Peak learning rate (AdamW). Default 1e-4.
    pub lr: f64,
    /// AdamW weight decay. Default 1e-2.
    pub weight_decay: f64,
    /// Epochs of linear warm-up before the cosine decay (fractions allowed). Default 1.
    pub warmup_epochs: f64,
    /// Batches whose gradients are summed per optimizer step. Default 1.
    pub grad_accumulation: usize,
    /// Epochs without a better validation metric before stopping; 0 never stops early.
    /// Default 5.
    pub patience: usize,
    /// Seed of initialization, sampling, shuffling, dropout and splits. Default 0.
    pub seed: u64,
    /// Fraction of patients for validation (without `--folds` or a splits file). Default 0.2.
    pub val_fraction: f64,
    /// Fraction of patients held out for testing (evaluated once, with the best checkpoint).
    /// Default 0.
    pub test_fraction: f64,
    /// A splits CSV (`train`, `val`, `test` columns) instead of fractions.
    pub splits_csv: Option<PathBuf>,
    /// A folder of published splits, `splits_0.csv` … `splits_{k-1}.csv`: one fold per file.
    pub splits_dir: Option<PathBuf>,
    /// What bags are drawn from: each patient's pooled slides, or each slide. Metrics are per
    /// patient either way. Default patient.
    pub unit: Unit,
    /// Expression scaling; `None` (folders written before it could be chosen) follows
    /// `log2_expression`.
    pub normalize: Option<NormalizeMethod>,
    /// Keep only this many genes, those of largest median absolute deviation on each fold's
    /// training patients.
    pub top_genes: Option<usize>,
    /// Clip normalized expression to `[-clip, clip]` (saved in `normalization.json`, so
    /// evaluation and prediction clip the same). Default none.
    pub clip: Option<f64>,
    /// Whether rows may lack expression or a tile file. Default error.
    pub missing_modality: MissingModality,
    /// Probability that a complete training sample loses one modality for a step (each
    /// modality with half of it, never both), so the model learns to predict from either.
    /// Default 0.
    pub modality_dropout: f64,
    /// The modalities used: both, or one alone (a unimodal baseline). Default both.
    pub modalities: Modalities,
    /// Resamples of the bootstrap intervals of the final metrics (0: none). Default 1000.
    pub bootstrap: usize,
    /// Risk groups of the log-rank test: 2 (split at the median risk) or 3 (tertiles).
    /// Default 2.
    pub risk_groups: usize,
    /// Weight classes by inverse frequency in the loss. Default false.
    pub class_weights: bool,
    /// Apply `log2(x + 1)` before standardizing expression (with `normalize` unset; kept equal
    /// to `normalize == log2-zscore` otherwise). Default true.
    pub log2_expression: bool,
    /// Loader threads. Default 2.
    pub workers: usize,
    /// Keep only each layer's input tokens in the forward pass and recompute the layer in the
    /// backward pass ([`MedCrossViT::backward_recomputed`]); with `grad_accumulation` 1 each
    /// layer's weights are also updated as soon as their gradients are known, so the
    /// gradients of the whole model never exist together. Peak memory about weights + AdamW
    /// state + one layer (1.6 instead of 2.9 GB for the seed model at batch 16), for one more
    /// forward pass per step. Default false.
    ///
    /// [`MedCrossViT::backward_recomputed`]: crate::model::MedCrossViT::backward_recomputed
    pub gradient_checkpointing: bool,
    /// Which epoch's weights are kept and reported: the best on validation or the last.
    /// Default best (and for `config.json` files written before it could be chosen).
    pub select: Select,
    /// A second folder for the TensorBoard event files of the training curves, besides the
    /// run's own `tensorboard/` (`DIR/fold_K` per fold). Default none (and left out of
    /// `config.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<PathBuf>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            task: Task::Classification,
            survival: SurvivalSettings::default(),
            epochs: 20,
            batch_size: 16,
            bags: BagSettings::default(),
            lr: 1e-4,
            weight_decay: 1e-2,
            warmup_epochs: 1.0,
            grad_accumulation: 1,
            patience: 5,
            seed: 0,
            val_fraction: 0.2,
            test_fraction: 0.0,
            splits_csv: None,
            splits_dir: None,
            unit: Unit::Patient,
            normalize: None,
            top_genes: None,
            clip: None,
            missing_modality: MissingModality::Error,
            modality_dropout: 0.0,
            modalities: Modalities::Both,
            bootstrap: 1000,
            risk_groups: 2,
            class_weights: false,
            log2_expression: true,
            workers: 2,
            gradient_checkpointing: false,
            select: Select::Best,
            tensorboard: None,
        }
    }
}

impl TrainSettings {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), DataError> {
        self.check_counts()?;
        self.bags.validate()?;
        self.check_rates()?;
        self.check_fractions()?;
        self.check_choices()?;
        if self.task == Task::Survival {
            self.check_survival()?;
        }
        Ok(())
    }

    /// Counts that must be at least 1.
    fn check_counts(&self) -> Result<(), DataError> {
        for (setting, value) in [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("grad_accumulation", self.grad_accumulation),
            ("workers", self.workers),
        ] {
            if value == 0 {
                return bad(setting, "must be at least 1".into());
            }
        }
        if self.top_genes == Some(0) {
            return bad("top_genes", "must be at least 1".into());
        }
        Ok(())
    }

    /// The optimizer's rates and the clip bound.
    fn check_rates(&self) -> Result<(), DataError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be ≥ 0, got {}", self.weight_decay),
            );
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup_epochs",
                format!("must be ≥ 0, got {}", self.warmup_epochs),
            );
        }
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad("clip", format!("must be a number above 0, got {c}"));
        }
        Ok(())
    }

    /// The split fractions and the modality dropout.
    fn check_fractions(&self) -> Result<(), DataError> {
        for (setting, value) in [
            ("val_fraction", self.val_fraction),
            ("test_fraction", self.test_fraction),
        ] {
            if !(0.0..1.0).contains(&value) {
                return bad(setting, format!("must lie in [0, 1), got {value}"));
            }
        }
        if self.val_fraction + self.test_fraction >= 1.0 {
            return bad(
                "test_fraction",
                format!(
                    "with val_fraction {} leaves no training patient (the two must sum to less than 1)",
                    self.val_fraction
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.modality_dropout) {
            return bad(
                "modality_dropout",
                format!("must lie in [0, 1], got {}", self.modality_dropout),
            );
        }
        Ok(())
    }

    /// Choices that must agree with each other.
    fn check_choices(&self) -> Result<(), DataError> {
        if !(2..=3).contains(&self.risk_groups) {
            return bad(
                "risk_groups",
                format!("must be 2 or 3, got {}", self.risk_groups),
            );
        }
        if self.splits_csv.is_some() && self.splits_dir.is_some() {
            return bad(
                "splits_dir",
                "give a splits file or a splits folder, not both".into(),
            );
        }
        if let Some(method) = self.normalize
            && (method == NormalizeMethod::Log2Zscore) != self.log2_expression
        {
            return bad(
                "log2_expression",
                format!(
                    "is {}, but normalize is {}",
                    self.log2_expression,
                    method.name()
                ),
            );
        }
        Ok(())
    }

    /// The survival settings.
    fn check_survival(&self) -> Result<(), DataError> {
        if self.survival.bins < 2 {
            return bad(
                "survival.bins",
                format!("must be at least 2, got {}", self.survival.bins),
            );
        }
        if !(0.0..=1.0).contains(&self.survival.alpha) {
            return bad(
                "survival.alpha",
                format!("must lie in [0, 1], got {}", self.survival.alpha),
            );
        }
        Ok(())
    }

    /// The expression scaling: `normalize`, or for settings that predate it log2-zscore or
    /// zscore after `log2_expression`.
    pub fn normalize_method(&self) -> NormalizeMethod {
        self.normalize.unwrap_or(if self.log2_expression {
            NormalizeMethod::Log2Zscore
        } else {
            NormalizeMethod::Zscore
        })
    }

    /// The name of the selection metric as `metrics.csv` names it (`val_auc`, `val_c_index`).
    pub fn monitor_column(&self) -> String {
        format!("val_{}", self.monitor())
    }

    /// The name of the validation metric that selects the best checkpoint (higher is better).
    pub fn monitor(&self) -> &'static str {
        match self.task {
            Task::Classification => "auc",
            Task::Survival => "c_index",
        }
    }
}

/// The error of a bad `setting`.
fn bad(setting: &'static str, message: String) -> Result<(), DataError> {
    Err(DataError::Setting { setting, message })
}

impl Serialize for TrainSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TrainSettings::serialize(self, serializer)
    }
}

/// Reads the flat object, refusing a field that no setting (of these or of the
/// [`BagSettings`]) knows: serde cannot refuse unknown fields of a struct with a flattened
/// part by itself. The known names are those the default settings serialize.
impl<'de> Deserialize<'de> for TrainSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        if let Some(fields) = value.as_object() {
            // Every field set, so that those left out when unset are named too.
            let all = TrainSettings {
                tensorboard: Some(PathBuf::new()),
                ..TrainSettings::default()
            };
            let known = serde_json::to_value(all).map_err(D::Error::custom)?;
            let known = known.as_object().expect("settings serialize to an object");
            if let Some(unknown) = fields.keys().find(|k| !known.contains_key(*k)) {
                let names: Vec<&str> = known.keys().map(String::as_str).collect();
                return Err(D::Error::custom(format!(
                    "unknown field `{unknown}`, expected one of {}",
                    names.join(", ")
                )));
            }
        }
        TrainSettings::deserialize(value).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config.json` files written before the checkpoint could be chosen read as `best`; the
    /// choice is saved by name.
    #[test]
    fn the_selection_defaults_to_best_and_is_saved_by_name() {
        let old: TrainSettings = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(old.select, Select::Best);
        let last = TrainSettings {
            select: Select::Last,
            ..Default::default()
        };
        let json = serde_json::to_value(&last).unwrap();
        assert_eq!(json["select"], "last");
        let back: TrainSettings = serde_json::from_value(json).unwrap();
        assert_eq!(back, last);
        assert_eq!(last.monitor_column(), "val_auc");
    }

    /// The bag settings sit beside the others in `config.json` (the format of earlier
    /// folders), and a misspelt field is refused, naming it.
    #[test]
    fn bag_settings_are_flat_in_the_file_and_unknown_fields_are_refused() {
        let json = serde_json::to_value(TrainSettings::default()).unwrap();
        assert_eq!(json["bag_size"], 50);
        assert_eq!(json["max_patches_total"], 2000);
        assert!(json.get("bags").is_none());
        let read: TrainSettings =
            serde_json::from_str(r#"{"bag_size": 8, "max_patches_total": 16, "epochs": 2}"#)
                .unwrap();
        assert_eq!(
            (read.bags.bag_size, read.bags.max_patches_total, read.epochs),
            (8, 16, 2)
        );
        let err = serde_json::from_str::<TrainSettings>(r#"{"bagsize": 8}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `bagsize`"), "{err}");
        let zero = TrainSettings {
            bags: BagSettings {
                bag_size: 0,
                ..BagSettings::default()
            },
            ..TrainSettings::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("bag_size")
        );
    }
}
