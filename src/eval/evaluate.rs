//! Applying a trained model to a cohort: `predictions.csv` and `metrics.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use super::metrics::Metrics;
use super::predict::{BatchHook, Predictions, metrics, predict};
use crate::data::{
    Cohort, CohortDataset, CohortTable, DataError, LabelMap, MissingModality, Modalities, Patients,
    Target, TileOptions, evaluation_bags, parse_finite,
};
use crate::run::{Error, ModelBundle, RunFileError, Task, TrainSettings, files};

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
    /// Its slides grouped by patient.
    pub patients: Arc<Patients>,
    /// Targets per patient (empty targets without labels).
    pub targets: Vec<Target>,
    /// Per-slide and per-patient predictions.
    pub predictions: Predictions,
    /// Metrics, when targets are known.
    pub metrics: Option<Metrics>,
}

/// Reads the targets the model's task needs, if the CSV has them (per slide).
fn read_targets(
    bundle: &ModelBundle,
    table: &CohortTable,
    require: bool,
) -> Result<Vec<Target>, Error> {
    match bundle.task() {
        Task::Classification => class_targets(bundle, table, require),
        Task::Survival => survival_targets(bundle, table, require),
    }
}

/// Each slide's class, when the CSV has labels (all of them when `require`d).
fn class_targets(
    bundle: &ModelBundle,
    table: &CohortTable,
    require: bool,
) -> Result<Vec<Target>, Error> {
    if !table.has_column(&table.columns().label) && !require {
        return Ok(vec![Target::default(); table.len()]);
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

/// Each slide's time, censorship and time bin, when the CSV has those columns (all of them
/// when `require`d).
fn survival_targets(
    bundle: &ModelBundle,
    table: &CohortTable,
    require: bool,
) -> Result<Vec<Target>, Error> {
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
        return Ok(vec![Target::default(); table.len()]);
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

/// Runs `bundle`'s model over every tile of every slide of the cohort (evaluation bagging),
/// averaging each slide's bags, then each patient's slides as the model was trained (its
/// unit, see [`patient_predictions`](super::predict::patient_predictions)); metrics are per
/// patient.
///
/// # Errors
///
/// The cohort's errors; genes of the model the cohort lacks; a feature width that differs
/// from the model's; a label the model does not know; a patient whose rows disagree on its
/// outcome or expression.
pub fn evaluate(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    device: &Device,
    with_attention: bool,
    hook: Option<&mut BatchHook<'_>>,
) -> Result<Evaluation, Error> {
    let allow = bundle.config.training.missing_modality == MissingModality::Allow;
    let modalities = bundle.config.training.modalities;
    let table = CohortTable::read_for(&request.csv, &bundle.config.columns, allow, modalities)?;
    if modalities != Modalities::Wsi {
        bundle.normalization.columns_in(&table)?;
    }
    let slide_targets = read_targets(bundle, &table, request.require_targets)?;
    let patients = Arc::new(Patients::of(&table));
    let targets = patient_targets(bundle, &table, &patients, &slide_targets)?;
    let cohort = Arc::new(open_cohort(bundle, request, table, allow)?);
    super::check_some_modality(&cohort, &patients, modalities)?;
    let settings = &bundle.config.training;
    let sources = super::usable_sources(&cohort, &patients, &cohort.members(), settings);
    let bags = evaluation_bags(&sources, settings.bags.bag_size);
    let dataset = Arc::new(
        CohortDataset::new(
            cohort.clone(),
            patients.clone(),
            bags,
            &bundle.normalization,
            targets.clone(),
        )?
        .with_modalities(settings.modalities),
    );
    let predictions = predict(
        &bundle.model,
        dataset,
        settings,
        device,
        with_attention,
        hook,
    )?;
    let known = targets.iter().any(|t| t.class.is_some());
    let metrics = known
        .then(|| evaluation_metrics(bundle, &predictions, &targets))
        .transpose()?;
    Ok(Evaluation {
        cohort,
        patients,
        targets,
        predictions,
        metrics,
    })
}

/// Each patient's target: that of its first row that has one (its rows must agree on the
/// outcome columns).
fn patient_targets(
    bundle: &ModelBundle,
    table: &CohortTable,
    patients: &Patients,
    slide_targets: &[Target],
) -> Result<Vec<Target>, Error> {
    let s = &bundle.config.training.survival;
    let outcome_columns: Vec<&str> = match bundle.task() {
        Task::Classification => vec![table.columns().label.as_str()],
        Task::Survival => vec![s.time_column.as_str(), s.censorship_column.as_str()],
    };
    patients.check_agreement(table, &outcome_columns)?;
    Ok((0..patients.len())
        .map(|p| {
            let slides = patients.slides(p);
            slides
                .iter()
                .map(|&s| slide_targets[s])
                .find(|t| t.class.is_some())
                .unwrap_or(slide_targets[slides[0]])
        })
        .collect())
}

/// The cohort's tiles as the model reads them: none for a model of expression alone, else
/// the features folder's files, of the model's width (missing files `allow`ed when the model
/// was trained with missing modalities).
fn open_cohort(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    table: CohortTable,
    allow: bool,
) -> Result<Cohort, Error> {
    let tiles = TileOptions {
        allow_missing: request.tiles.allow_missing || allow,
        ..request.tiles.clone()
    };
    let wsi_dim = bundle.model.config().wsi_dim;
    let cohort = if bundle.config.training.modalities == Modalities::Rna {
        Cohort::without_tiles(table, wsi_dim)
    } else if tiles.features_dir.as_os_str().is_empty() {
        return Err(super::no_features().into());
    } else {
        Cohort::open(table, &tiles)?
    };
    cohort.check_feature_dim(wsi_dim)?;
    Ok(cohort)
}

/// The task's metrics of `predictions` with their intervals; for survival, the censoring
/// is estimated on the patients evaluated (a model applied to a cohort of its own).
fn evaluation_metrics(
    bundle: &ModelBundle,
    predictions: &Predictions,
    targets: &[Target],
) -> Result<Metrics, Error> {
    let classes = bundle.labels.len();
    let m = metrics(predictions, targets, bundle.task(), classes)?;
    let weighted = bundle.config.survival_bins.as_ref().map(|b| {
        super::predict::SurvivalEval::new(
            b,
            predictions.patients.len(),
            targets,
            predictions.patients.iter().map(|p| p.patient),
            "evaluated",
        )
    });
    Ok(super::predict::with_intervals(
        m,
        &predictions.patients,
        targets,
        &bundle.config.training,
        classes,
        weighted.as_ref(),
    ))
}

/// The output columns shared by every predictions file (`predictions.csv`,
/// `predictions_slides.csv`, `cv_predictions.csv`): `logit_*`, `prob_*` (class
/// probabilities, summing to 1), `pred`, `label` when known. For survival the per-bin values
/// are hazards and named so, `hazard_1 … hazard_B` (each the probability of the event in
/// that bin given survival to it; they do not sum to 1), followed by `pred`, `label`, `risk`,
/// the time and censorship under their CSV names when known, and `S_1 … S_B`, the survival
/// probability at the end of each bin (`S_k = Π_{j≤k} (1 − hazard_j)`).
pub(crate) fn output_header(
    labels: &LabelMap,
    settings: &TrainSettings,
    known: bool,
) -> Vec<String> {
    let classes = labels.len();
    let survival = settings.task == Task::Survival;
    let mut header: Vec<String> = (0..classes).map(|c| format!("logit_{c}")).collect();
    header.extend((0..classes).map(|c| match survival {
        true => format!("hazard_{}", c + 1),
        false => format!("prob_{c}"),
    }));
    header.push("pred".into());
    if known {
        header.push("label".into());
    }
    if settings.task == Task::Survival {
        let s = &settings.survival;
        header.push("risk".into());
        if known {
            header.push(s.time_column.clone());
            header.push(s.censorship_column.clone());
        }
        header.extend((1..=classes).map(|k| format!("S_{k}")));
    }
    header
}

/// The cells of [`output_header`]'s columns for one prediction.
pub(crate) fn output_cells(
    labels: &LabelMap,
    settings: &TrainSettings,
    known: bool,
    shown: super::predict::Shown<'_>,
    target: Target,
) -> Vec<String> {
    let (logits, probs, risk, predicted) = (shown.logits, shown.probs, shown.risk, shown.predicted);
    let mut row: Vec<String> = logits.iter().map(|v| format!("{v:.8}")).collect();
    row.extend(probs.iter().map(|v| format!("{v:.8}")));
    row.push(labels.classes[predicted].clone());
    if known {
        row.push(
            target
                .class
                .map(|c| labels.classes[c].clone())
                .unwrap_or_default(),
        );
    }
    if settings.task == Task::Survival {
        row.push(format!("{:.6}", risk.unwrap_or(f64::NAN)));
        if known {
            row.push(target.time.map(|t| t.to_string()).unwrap_or_default());
            row.push(
                target
                    .censored
                    .map(|c| u8::from(c).to_string())
                    .unwrap_or_default(),
            );
        }
        row.extend(super::survival::survival_curve(probs).map(|s| format!("{s:.8}")));
    }
    row
}

/// Writes rows as a CSV file (through a temporary file renamed into place).
pub(crate) fn write_csv(
    path: &Path,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| -> Error { RunFileError::io(path)(std::io::Error::other(e)).into() };
    for row in rows {
        writer.write_record(&row).map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| RunFileError::io(path)(e.into_error()))?;
    let text = String::from_utf8(bytes).expect("cells are UTF-8 text");
    crate::util::atomic::write(path, text.as_bytes())
        .map_err(|e| crate::model::PersistError::io(path)(e).into())
}

/// Writes `predictions.csv`: one row per patient, the patient id under the CSV's patient
/// column name (the slide column's when the CSV has no patient column, each slide then being
/// its own patient), `slides` (how many were predicted), `modalities` (what the prediction
/// saw: `both`, `wsi_only`, `rna_only`), then `logit_*`, `prob_*`, `pred` (a
/// class name), `label` when known; for survival `hazard_*` in place of `prob_*`, and also
/// `risk`, the time and the censorship under their CSV column names and `S_1 … S_B`, the
/// survival probability at the end of each time bin.
///
/// # Errors
///
/// [`RunFileError::Io`] naming the file.
pub fn write_predictions(
    path: &Path,
    bundle: &ModelBundle,
    evaluation: &Evaluation,
) -> Result<(), Error> {
    let table = evaluation.cohort.table();
    let known = evaluation.targets.iter().any(|t| t.class.is_some());
    let id_column = table.patient_id_column();
    let mut header = vec![
        id_column.to_string(),
        "slides".to_string(),
        "modalities".to_string(),
    ];
    header.extend(output_header(
        &bundle.labels,
        &bundle.config.training,
        known,
    ));
    let rows = evaluation.predictions.patients.iter().map(|p| {
        let mut row = vec![
            evaluation.patients.id(p.patient).to_string(),
            p.slides.to_string(),
            p.modalities().to_string(),
        ];
        row.extend(output_cells(
            &bundle.labels,
            &bundle.config.training,
            known,
            p.shown(),
            evaluation.targets[p.patient],
        ));
        row
    });
    write_csv(path, std::iter::once(header).chain(rows))
}

/// Writes `predictions_slides.csv`: one row per slide, the slide id and (when the CSV has one)
/// the patient id under their CSV column names, `modalities`, then the columns of
/// [`write_predictions`] (the label and survival columns being the patient's).
///
/// # Errors
///
/// [`RunFileError::Io`] naming the file.
pub fn write_slide_predictions(
    path: &Path,
    bundle: &ModelBundle,
    evaluation: &Evaluation,
) -> Result<(), Error> {
    let table = evaluation.cohort.table();
    let known = evaluation.targets.iter().any(|t| t.class.is_some());
    let with_patient = table.has_patient_column();
    let mut header = vec![table.columns().slide.clone()];
    if with_patient {
        header.push(table.columns().patient.clone());
    }
    header.push("modalities".into());
    header.extend(output_header(
        &bundle.labels,
        &bundle.config.training,
        known,
    ));
    let rows = evaluation.predictions.slides.iter().map(|p| {
        let record = &table.slides()[p.slide];
        let mut row = vec![record.slide.clone()];
        if with_patient {
            row.push(record.patient.clone());
        }
        row.push(super::predict::modality_group(p.wsi, p.rna).to_string());
        let patient = evaluation.patients.of_slide(p.slide);
        row.extend(output_cells(
            &bundle.labels,
            &bundle.config.training,
            known,
            p.shown(),
            evaluation.targets[patient],
        ));
        row
    });
    write_csv(path, std::iter::once(header).chain(rows))
}

/// Writes an evaluation folder: creates `dir`, then `metrics.json`, `predictions.csv` and,
/// with `per_slide`, `predictions_slides.csv` ([`write_predictions`],
/// [`write_slide_predictions`]); returns the metrics written (empty when the cohort had no
/// targets). What `evaluate` writes, from the command line and from Python alike.
///
/// # Errors
///
/// [`RunFileError::Io`] naming the folder or the file.
pub fn write_evaluation(
    dir: &Path,
    bundle: &ModelBundle,
    evaluation: &Evaluation,
    per_slide: bool,
) -> Result<Metrics, Error> {
    std::fs::create_dir_all(dir).map_err(RunFileError::io(dir))?;
    let metrics = evaluation.metrics.clone().unwrap_or_default();
    write_metrics(dir, &metrics)?;
    write_predictions(&dir.join(files::PREDICTIONS_CSV), bundle, evaluation)?;
    if per_slide {
        let slides = dir.join(files::PREDICTIONS_SLIDES_CSV);
        write_slide_predictions(&slides, bundle, evaluation)?;
    }
    Ok(metrics)
}

/// Writes `metrics.json` into `dir`.
///
/// # Errors
///
/// [`RunFileError::Io`] naming the file.
pub fn write_metrics(dir: &Path, metrics: &Metrics) -> Result<(), Error> {
    Ok(crate::run::save_json(
        metrics,
        &dir.join(files::METRICS_JSON),
    )?)
}
