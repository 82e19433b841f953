//! Helpers the training loop shares with evaluation and cross-validation: the bag sources a
//! modality setting can use, the validation plots and the JSON files.

use std::path::Path;

use super::metrics::Metrics;
use super::plot;
use super::settings::TrainSettings;
use crate::data::Modalities;
use crate::error::Error;

/// The bag sources of `slides` that have what `settings.modalities` uses: a unimodal
/// baseline leaves out the patients that lack its modality.
pub(crate) fn usable_sources(
    cohort: &crate::data::Cohort,
    patients: &crate::data::Patients,
    slides: &[usize],
    settings: &TrainSettings,
) -> Vec<crate::data::BagSource> {
    let table = cohort.table();
    cohort
        .bag_sources(slides, patients, settings.unit)
        .into_iter()
        .filter(|s| match settings.modalities {
            Modalities::Both => true,
            Modalities::Wsi => s.slides.iter().any(|&(_, n)| n > 0),
            Modalities::Rna => patients.has_rna(table, s.patient),
        })
        .collect()
}

/// Draws `roc.png` and `confusion.png` of `patients` (those with a class) into `dir`.
pub(crate) fn classification_png(
    dir: &Path,
    patients: &[crate::train::PatientPrediction],
    targets: &[crate::data::Target],
    classes: &[String],
    metrics: &Metrics,
    what: &str,
) -> Result<(), Error> {
    let known: Vec<_> = patients
        .iter()
        .filter(|p| targets[p.patient].class.is_some())
        .collect();
    let truth: Vec<usize> = known
        .iter()
        .map(|p| targets[p.patient].class.expect("filtered"))
        .collect();
    let probs: Vec<Vec<f64>> = known.iter().map(|p| p.probs.clone()).collect();
    plot::classification_plots(
        dir,
        &truth,
        &probs,
        classes,
        metrics.auc,
        metrics.auc_ci,
        what,
    )
}

/// Draws the Kaplan–Meier plot of `patients` (those with a target) split by predicted risk.
pub(crate) fn km_png(
    path: &Path,
    patients: &[crate::train::PatientPrediction],
    targets: &[crate::data::Target],
    settings: &TrainSettings,
    what: &str,
) -> Result<(), Error> {
    let known: Vec<_> = patients
        .iter()
        .filter(|p| targets[p.patient].time.is_some())
        .collect();
    let time: Vec<f64> = known
        .iter()
        .map(|p| super::predict::time_f64(targets[p.patient].time.unwrap_or(0.0)))
        .collect();
    let event: Vec<bool> = known
        .iter()
        .map(|p| !targets[p.patient].censored.unwrap_or(true))
        .collect();
    let risk: Vec<f64> = known.iter().map(|p| p.risk.unwrap_or(0.0)).collect();
    plot::km_plot(path, &time, &event, &risk, settings.risk_groups, what)
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    Ok(crate::data::json::save_json(value, path)?)
}
