//! Pooled out-of-fold predictions of a cross-validation run: `cv_predictions.csv` and the
//! metrics on those rows (`cv.json`'s `pooled`).

use std::path::Path;

use super::predict::{PatientPrediction, Predictions, metrics, with_intervals};
use super::settings::{Task, TrainSettings};
use super::{Metrics, plan::Prepared};
use crate::data::{DataError, Target};
use crate::error::Error;

/// Each validation patient of every fold, with its fold: every patient once (folds validate
/// disjoint patients).
#[derive(Debug, Clone, Default)]
pub struct OutOfFold {
    rows: Vec<(usize, PatientPrediction)>,
    targets: Vec<Target>,
}

impl OutOfFold {
    /// Adds fold `fold`'s validation predictions, scored against `targets` (by patient).
    pub fn add(&mut self, fold: usize, predictions: &Predictions, targets: &[Target]) {
        if self.targets.is_empty() {
            self.targets = targets.to_vec();
        }
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
    /// [`DataError::Io`] naming the PNG.
    pub fn km_png(&self, path: &Path, settings: &TrainSettings) -> Result<(), Error> {
        let patients: Vec<PatientPrediction> = self.rows.iter().map(|(_, p)| p.clone()).collect();
        super::fit::km_png(
            path,
            &patients,
            &self.targets,
            settings,
            "pooled out-of-fold",
        )
    }

    /// Whether no fold was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The metrics of the pooled rows, with their intervals (no loss: the folds' models
    /// differ).
    pub fn metrics(&self, settings: &TrainSettings, classes: usize) -> Metrics {
        let pooled = Predictions {
            slides: Vec::new(),
            patients: self.rows.iter().map(|(_, p)| p.clone()).collect(),
            loss: None,
        };
        let m = metrics(&pooled, &self.targets, settings.task, classes);
        with_intervals(m, &pooled.patients, &self.targets, settings, classes)
    }

    /// Writes `cv_predictions.csv`: one row per patient, in fold then patient order: the
    /// patient id (under the CSV's patient column name, else the slide column's), `fold`,
    /// `slides`, `modalities`, `logit_*`, `prob_*`, `pred`, `label`; for survival also `risk`,
    /// the time and censorship under their CSV names, and `S_1 … S_B`, the model's survival
    /// probability at the end of each time bin (`S_k = Π_{j≤k} (1 − h_j)`).
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] naming the file.
    pub fn write_csv(
        &self,
        path: &Path,
        prepared: &Prepared,
        settings: &TrainSettings,
    ) -> Result<(), Error> {
        let table = prepared.cohort.table();
        let labels = &prepared.labels;
        let classes = labels.len();
        let survival = settings.task == Task::Survival;
        let id_column = if table.has_patient_column() {
            &table.columns().patient
        } else {
            &table.columns().slide
        };
        let mut header = vec![
            id_column.clone(),
            "fold".into(),
            "slides".into(),
            "modalities".into(),
        ];
        header.extend((0..classes).map(|c| format!("logit_{c}")));
        header.extend((0..classes).map(|c| format!("prob_{c}")));
        header.push("pred".into());
        header.push("label".into());
        if survival {
            let s = &settings.survival;
            header.push("risk".into());
            header.push(s.time_column.clone());
            header.push(s.censorship_column.clone());
            header.extend((1..=classes).map(|k| format!("S_{k}")));
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        let failed =
            |e: csv::Error| -> Error { DataError::io(path, std::io::Error::other(e)).into() };
        writer.write_record(&header).map_err(failed)?;
        for (fold, p) in &self.rows {
            let target = self.targets[p.patient];
            let mut row = vec![
                prepared.patients.id(p.patient).to_string(),
                fold.to_string(),
                p.slides.to_string(),
                p.modalities().to_string(),
            ];
            row.extend(p.logits.iter().map(|v| format!("{v:.8}")));
            row.extend(p.probs.iter().map(|v| format!("{v:.8}")));
            row.push(labels.classes[p.predicted_class()].clone());
            row.push(
                target
                    .class
                    .map(|c| labels.classes[c].clone())
                    .unwrap_or_default(),
            );
            if survival {
                row.push(format!("{:.6}", p.risk.unwrap_or(f64::NAN)));
                row.push(target.time.map(|t| t.to_string()).unwrap_or_default());
                row.push(
                    target
                        .censored
                        .map(|c| u8::from(c).to_string())
                        .unwrap_or_default(),
                );
                let mut s = 1.0;
                for h in &p.probs {
                    s *= 1.0 - h;
                    row.push(format!("{s:.8}"));
                }
            }
            writer.write_record(&row).map_err(failed)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| DataError::io(path, e.into_error()))?;
        let text = String::from_utf8(bytes).expect("cells are UTF-8 text");
        crate::model::write_text_atomic(path, &text).map_err(Error::from)
    }
}
