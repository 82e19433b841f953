//! Pooled out-of-fold predictions of a cross-validation run: `cv_predictions.csv` and the
//! metrics on those rows (`cv.json`'s `pooled`).

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::Prepared;
use crate::data::{Target, TimeBins};
use crate::eval::{
    Metrics, PatientPrediction, Predictions, SurvivalEval, outcome_pairs, output_cells,
    output_header, task_metrics as metrics, with_intervals, write_csv,
};
use crate::run::{Error, TrainSettings};

/// Each validation patient of every fold, with its fold: every patient once (folds validate
/// disjoint patients).
#[derive(Debug, Clone, Default)]
pub struct OutOfFold {
    rows: Vec<(usize, PatientPrediction)>,
    /// The epoch of each fold's predictions (of its kept checkpoint), by fold.
    epochs: BTreeMap<usize, usize>,
    targets: Vec<Target>,
    /// Each fold's survival time bins, by fold.
    bins: BTreeMap<usize, TimeBins>,
}

impl OutOfFold {
    /// Adds fold `fold`'s validation predictions by the weights of `epoch`, scored against
    /// `targets` (by patient), with its survival time bins.
    pub fn add(
        &mut self,
        fold: usize,
        epoch: usize,
        predictions: &Predictions,
        targets: &[Target],
        bins: Option<TimeBins>,
    ) {
        if self.targets.is_empty() {
            self.targets = targets.to_vec();
        }
        if let Some(b) = bins {
            self.bins.insert(fold, b);
        }
        self.epochs.insert(fold, epoch);
        // Survival bins are each fold's own, but times and censorship (what the pooled
        // metrics read) are the patient's; classes are the same in every fold.
        for p in &predictions.patients {
            self.targets[p.patient] = targets[p.patient];
            self.rows.push((fold, p.clone()));
        }
    }

    /// Survival: writes the Kaplan–Meier plot of the pooled rows.
    ///
    /// # Errors
    ///
    /// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the PNG.
    pub fn km_png(&self, path: &Path, settings: &TrainSettings) -> Result<(), Error> {
        let patients: Vec<PatientPrediction> = self.rows.iter().map(|(_, p)| p.clone()).collect();
        crate::eval::km_png(
            path,
            &patients,
            &self.targets,
            settings,
            "pooled out-of-fold",
        )
    }

    /// Classification: writes `roc.png` and `confusion.png` of the pooled rows into `dir`.
    ///
    /// # Errors
    ///
    /// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the PNG.
    pub fn classification_png(
        &self,
        dir: &Path,
        classes: &[String],
        pooled: &Metrics,
    ) -> Result<(), Error> {
        let patients: Vec<PatientPrediction> = self.rows.iter().map(|(_, p)| p.clone()).collect();
        crate::eval::classification_png(
            dir,
            &patients,
            &self.targets,
            classes,
            pooled,
            "pooled out-of-fold",
        )
    }

    /// Whether no fold was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The metrics of the pooled rows, with their intervals (no loss: the folds' models
    /// differ).
    ///
    /// # Errors
    ///
    /// [`RunError::NonFinitePredictions`](crate::run::RunError::NonFinitePredictions) when
    /// a pooled prediction is not finite.
    pub fn metrics(&self, settings: &TrainSettings, classes: usize) -> Result<Metrics, Error> {
        let pooled = Predictions {
            slides: Vec::new(),
            patients: self.rows.iter().map(|(_, p)| p.clone()).collect(),
            loss: None,
        };
        let m = metrics(&pooled, &self.targets, settings.task, classes)?;
        // Every fold's bins known: the weighted survival metrics, censoring estimated on all
        // the pooled patients.
        let bins: Option<Vec<&TimeBins>> =
            self.rows.iter().map(|(f, _)| self.bins.get(f)).collect();
        let weighted = bins.map(|bins| SurvivalEval {
            bins,
            censoring: outcome_pairs(&self.targets, self.rows.iter().map(|(_, p)| p.patient)),
            source: "all",
        });
        Ok(with_intervals(
            m,
            &pooled.patients,
            &self.targets,
            settings,
            classes,
            weighted.as_ref(),
        ))
    }

    /// Writes `cv_predictions.csv`: one row per patient, in fold then patient order: the
    /// patient id (under the CSV's patient column name, else the slide column's), `fold`,
    /// `slides`, `modalities`, `checkpoint` (`best` or `last`: which of the fold's epochs
    /// predicted), `epoch` (that epoch), then the columns of `predictions.csv`: `logit_*`,
    /// `prob_*`, `pred`, `label`; for survival `hazard_1 … hazard_B` in place of `prob_*`,
    /// `risk`, the time and censorship under their CSV names, and `S_1 … S_B`, the model's
    /// survival probability at the end of each time bin (`S_k = Π_{j≤k} (1 − hazard_j)`).
    ///
    /// # Errors
    ///
    /// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the file.
    pub fn write_csv(
        &self,
        path: &Path,
        prepared: &Prepared,
        settings: &TrainSettings,
    ) -> Result<(), Error> {
        let table = prepared.cohort.table();
        let labels = &prepared.labels;
        let id_column = table.patient_id_column();
        let mut header = vec![
            id_column.to_string(),
            "fold".into(),
            "slides".into(),
            "modalities".into(),
            "checkpoint".into(),
            "epoch".into(),
        ];
        header.extend(output_header(labels, settings, true));
        let rows = self.rows.iter().map(|(fold, p)| {
            let mut row = vec![
                prepared.patients.id(p.patient).to_string(),
                fold.to_string(),
                p.slides.to_string(),
                p.modalities().to_string(),
                settings.select.name().to_string(),
                self.epochs
                    .get(fold)
                    .map_or(String::new(), usize::to_string),
            ];
            row.extend(output_cells(
                labels,
                settings,
                true,
                p.shown(),
                self.targets[p.patient],
            ));
            row
        });
        write_csv(path, std::iter::once(header).chain(rows))
    }
}
