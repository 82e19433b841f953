//! Applying a trained model to a cohort: `predictions.csv` and `metrics.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use super::bundle::{ModelBundle, files};
use super::metrics::Metrics;
use super::predict::{BatchHook, Predictions, metrics, predict};
use super::settings::Task;
use crate::data::{
    Cohort, CohortDataset, CohortTable, DataError, Target, TileOptions, evaluation_bags,
    parse_finite,
};
use crate::error::Error;

/// A cohort to run a model folder on.
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    /// The cohort CSV.
    pub csv: PathBuf,
    /// Where its tile files are.
    pub tiles: TileOptions,
    /// Whether labels (or survival times) are required: `evaluate` needs them for metrics,
    /// `predict` does not.
    pub require_targets: bool,
}

/// The result of running a model over a cohort.
#[derive(Debug)]
pub struct Evaluation {
    /// The cohort, as read.
    pub cohort: Arc<Cohort>,
    /// Targets per slide (empty targets without labels).
    pub targets: Vec<Target>,
    /// Per-slide predictions.
    pub predictions: Predictions,
    /// Metrics, when targets are known.
    pub metrics: Option<Metrics>,
}

/// Reads the targets the model's task needs, if the CSV has them.
fn read_targets(
    bundle: &ModelBundle,
    table: &CohortTable,
    require: bool,
) -> Result<Vec<Target>, Error> {
    let none = vec![Target::default(); table.len()];
    match bundle.task() {
        Task::Classification => {
            if !table.has_column(&table.columns().label) && !require {
                return Ok(none);
            }
            if require {
                // Metrics need every slide's label: the first empty cell is named.
                table.labels()?;
            }
            // Predicting, an empty label is a slide to predict without one; a label the model
            // does not know is a mistake in the CSV, named with its slide.
            table
                .slides()
                .iter()
                .map(|s| {
                    let class = match &s.label {
                        Some(l) => Some(bundle.labels.encode(&s.slide, l)?),
                        None => None,
                    };
                    Ok(Target {
                        class,
                        ..Default::default()
                    })
                })
                .collect()
        }
        Task::Survival => {
            let s = &bundle.config.training.survival;
            let (Some(times), Some(censorship)) = (
                table.column(&s.time_column),
                table.column(&s.censorship_column),
            ) else {
                if require {
                    // Its error names the missing column and those the file has.
                    table.numeric_column(&s.time_column)?;
                    table.numeric_column(&s.censorship_column)?;
                }
                return Ok(none);
            };
            let bins = bundle
                .config
                .survival_bins
                .clone()
                .ok_or_else(|| DataError::Setting {
                    setting: "survival_bins",
                    message: "the model folder records no survival time bins".into(),
                })?;
            table
                .slides()
                .iter()
                .enumerate()
                .map(|(i, slide)| {
                    // As with labels: predicting, a row without time and censorship is a slide
                    // to predict without them; half a target is a mistake in the CSV.
                    if !require && times[i].trim().is_empty() && censorship[i].trim().is_empty() {
                        return Ok(Target::default());
                    }
                    let number = |name: &str, cell: &String| {
                        parse_finite(cell).map_err(|reason| DataError::BadValue {
                            path: table.path().to_path_buf(),
                            line: slide.line,
                            slide: slide.slide.clone(),
                            column: name.to_string(),
                            value: cell.clone(),
                            reason,
                        })
                    };
                    let t = number(&s.time_column, &times[i])?;
                    let c = number(&s.censorship_column, &censorship[i])?;
                    Ok(Target {
                        class: Some(bins.bin(t)),
                        time: Some(t as f32),
                        censored: Some(c != 0.0),
                    })
                })
                .collect()
        }
    }
}

/// Runs `bundle`'s model over every tile of every slide of the cohort (evaluation bagging),
/// averaging each slide's bags.
///
/// # Errors
///
/// The cohort's errors; a gene list or feature width that differs from the model's; a label
/// the model does not know.
pub fn evaluate(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    device: &Device,
    with_attention: bool,
    hook: Option<&mut BatchHook<'_>>,
) -> Result<Evaluation, Error> {
    let table = CohortTable::read(&request.csv, &bundle.config.columns)?;
    table.check_genes(
        bundle.model.config().rna_num_genes,
        Some(&bundle.normalization.genes),
    )?;
    let targets = read_targets(bundle, &table, request.require_targets)?;
    let cohort = Arc::new(Cohort::open(table, &request.tiles)?);
    cohort.check_feature_dim(bundle.model.config().wsi_dim)?;
    let settings = &bundle.config.training;
    let bags = evaluation_bags(&cohort.tile_counts(&cohort.usable()), settings.bag_size);
    let dataset = Arc::new(CohortDataset::new(
        cohort.clone(),
        bags,
        &bundle.normalization,
        targets.clone(),
    )?);
    let predictions = predict(
        &bundle.model,
        dataset,
        settings,
        device,
        with_attention,
        hook,
    )?;
    let known = targets.iter().any(|t| t.class.is_some());
    let metrics =
        known.then(|| metrics(&predictions, &targets, bundle.task(), bundle.labels.len()));
    Ok(Evaluation {
        cohort,
        targets,
        predictions,
        metrics,
    })
}

/// Writes `predictions.csv`: the slide id under its CSV column name, `logit_*`, `prob_*`,
/// `pred` (a class name), `label` when known; for survival also `risk`, the time and the
/// censorship under their CSV column names.
///
/// # Errors
///
/// [`DataError::Io`] naming the file.
pub fn write_predictions(
    path: &Path,
    bundle: &ModelBundle,
    evaluation: &Evaluation,
) -> Result<(), Error> {
    let classes = bundle.labels.len();
    let table = evaluation.cohort.table();
    let survival = bundle.task() == Task::Survival;
    let known = evaluation.targets.iter().any(|t| t.class.is_some());
    let mut writer =
        csv::Writer::from_path(path).map_err(|e| DataError::io(path, std::io::Error::other(e)))?;
    let mut header = vec![table.columns().slide.clone()];
    header.extend((0..classes).map(|c| format!("logit_{c}")));
    header.extend((0..classes).map(|c| format!("prob_{c}")));
    header.push("pred".into());
    if known {
        header.push("label".into());
    }
    let s = &bundle.config.training.survival;
    if survival {
        header.push("risk".into());
        if known {
            header.push(s.time_column.clone());
            header.push(s.censorship_column.clone());
        }
    }
    let write_err =
        |e: csv::Error| -> Error { DataError::io(path, std::io::Error::other(e)).into() };
    writer.write_record(&header).map_err(write_err)?;
    for p in &evaluation.predictions.slides {
        let target = evaluation.targets[p.slide];
        let mut row = vec![table.slides()[p.slide].slide.clone()];
        row.extend(p.logits.iter().map(|v| format!("{v:.8}")));
        row.extend(p.probs.iter().map(|v| format!("{v:.8}")));
        row.push(bundle.labels.classes[p.predicted_class()].clone());
        if known {
            row.push(
                target
                    .class
                    .map(|c| bundle.labels.classes[c].clone())
                    .unwrap_or_default(),
            );
        }
        if survival {
            row.push(format!("{:.6}", p.risk.unwrap_or(f64::NAN)));
            if known {
                row.push(target.time.map(|t| t.to_string()).unwrap_or_default());
                row.push(
                    target
                        .censored
                        .map(|c| u8::from(c).to_string())
                        .unwrap_or_default(),
                );
            }
        }
        writer.write_record(&row).map_err(write_err)?;
    }
    writer.flush().map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// Writes `metrics.json` into `dir`.
///
/// # Errors
///
/// [`DataError::Io`] naming the file.
pub fn write_metrics(dir: &Path, metrics: &Metrics) -> Result<(), Error> {
    super::fit::write_json(&dir.join(files::METRICS_JSON), metrics)
}
