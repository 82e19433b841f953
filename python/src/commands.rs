//! `train`, `resume`, `evaluate`, `predict` and `check`: the library's requests built from
//! Python's arguments, as `src/cli/` builds them from the command line, and the same library
//! calls. Settings and column names come as JSON objects (`med_crossvit/__init__.py` checks
//! the keyword names first), read by the library's own serde types, so a setting means here
//! what it means in `config.json`.

use std::path::PathBuf;

use burn::tensor::Device;
use pyo3::prelude::*;

use med_crossvit::data::{CohortColumns, TileOptions};
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::progress::stoppable;
use med_crossvit::run::{
    DataSource, ModelBundle, ModelSpec, OutputKind, RunError, RunFileError, TokenizerSpec,
    TrainSettings, check_output,
};
use med_crossvit::train::{
    self as training, Event, Parallel, Relocation, TrainRequest, TrainSummary,
};

use crate::errors::to_py;
use crate::progress::{Watch, print};

/// The device named `name`: `flex` (the CPU backend this package is built with).
pub fn device(name: &str) -> PyResult<Device> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        other => Err(to_py(
            RunError::Unknown {
                what: "device",
                name: other.into(),
                choices: "flex".into(),
            }
            .into(),
        )),
    }
}

/// `parsed` (a JSON object read into one of the library's types), or a `DataError` naming
/// `what`.
fn parse<T>(what: &'static str, parsed: serde_json::Result<T>) -> PyResult<T> {
    parsed.map_err(|e| {
        to_py(
            med_crossvit::DataError::Setting {
                setting: what,
                message: e.to_string(),
            }
            .into(),
        )
    })
}

/// Runs a training `call` with the GIL released, its events printed and watched for Ctrl-C
/// (see [`Watch`]); a `KeyboardInterrupt` met on the way is raised after the call has
/// stopped, with the library's word on where the run stands printed first.
fn watched<F>(py: Python<'_>, verbose: bool, call: F) -> PyResult<TrainSummary>
where
    F: FnOnce(&mut dyn FnMut(Event<'_>)) -> Result<TrainSummary, med_crossvit::Error> + Send,
{
    let mut watch = Watch::new(verbose);
    let stop = watch.stop.clone();
    let result = py.detach(|| stoppable(&stop, || call(&mut |e| watch.on(e))));
    if let Some(interrupt) = watch.interrupted.take() {
        match &result {
            Err(e) => print(py, &e.to_string()),
            Ok(_) => print(py, "the run had finished before the interrupt was seen"),
        }
        return Err(interrupt);
    }
    result.map_err(to_py)
}

/// Trains a model; returns the summary (`TrainSummary`) as JSON.
#[pyfunction]
#[pyo3(signature = (csv, out, features=None, settings="{}", preset="small", config=None,
    tokenizer=None, signatures=None, folds=None, columns="{}", features_key=None,
    skip_missing=false, force=false, device="flex", stop_after_epoch=None, verbose=true))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    csv: PathBuf,
    out: PathBuf,
    features: Option<PathBuf>,
    settings: &str,
    preset: &str,
    config: Option<PathBuf>,
    tokenizer: Option<&str>,
    signatures: Option<PathBuf>,
    folds: Option<usize>,
    columns: &str,
    features_key: Option<String>,
    skip_missing: bool,
    force: bool,
    device: &str,
    stop_after_epoch: Option<usize>,
    verbose: bool,
) -> PyResult<String> {
    let device = self::device(device)?;
    let request = TrainRequest {
        data: DataSource {
            csv,
            features_dir: features.unwrap_or_default(),
            features_key,
            skip_missing,
        },
        columns: parse::<CohortColumns>("columns", serde_json::from_str(columns))?,
        model: match config {
            Some(path) => ModelSpec::File(path),
            None => ModelSpec::Preset(preset.into()),
        },
        tokenizer: tokenizer_spec(tokenizer, signatures)?,
        settings: parse::<TrainSettings>("settings", serde_json::from_str(settings))?,
        folds,
        out,
        stop_after: stop_after_epoch,
        force,
    };
    let summary = watched(py, verbose, |events| {
        training::train(&request, &device, events)
    })?;
    Ok(serde_json::to_string(&summary).expect("a summary serializes"))
}

/// The tokenizer of `name` (dense, per_gene, pathways), as `train --tokenizer` reads it.
fn tokenizer_spec(
    name: Option<&str>,
    signatures: Option<PathBuf>,
) -> PyResult<Option<TokenizerSpec>> {
    let bad = |why: String| {
        to_py(
            RunError::BadOption {
                option: "tokenizer".into(),
                why,
            }
            .into(),
        )
    };
    Ok(match (name, signatures) {
        (None, None) => None,
        (Some("dense"), _) => Some(TokenizerSpec::Dense),
        (Some("per_gene"), _) => Some(TokenizerSpec::PerGene),
        (Some("pathways") | None, Some(path)) => Some(TokenizerSpec::Pathways(path)),
        (Some("pathways"), None) => {
            return Err(bad("pathways needs signatures=FILE".into()));
        }
        (Some(other), _) => {
            return Err(bad(format!(
                "unknown tokenizer `{other}` (choose from: dense, per_gene, pathways)"
            )));
        }
    })
}

/// Continues a run from its last complete epoch; returns the summary as JSON.
#[pyfunction]
#[pyo3(signature = (run, csv=None, features=None, device="flex", stop_after_epoch=None,
    verbose=true))]
pub fn resume(
    py: Python<'_>,
    run: PathBuf,
    csv: Option<PathBuf>,
    features: Option<PathBuf>,
    device: &str,
    stop_after_epoch: Option<usize>,
    verbose: bool,
) -> PyResult<String> {
    let device = self::device(device)?;
    let relocation = Relocation {
        csv,
        features_dir: features,
    };
    let summary = watched(py, verbose, |events| {
        training::resume_relocated(
            &run,
            &relocation,
            stop_after_epoch,
            &Parallel::single(&device),
            events,
        )
    })?;
    Ok(serde_json::to_string(&summary).expect("a summary serializes"))
}

/// The model folder and cohort of `evaluate` and `predict`, as `ApplyArgs::load` builds them.
fn apply_request(
    csv: PathBuf,
    features: Option<PathBuf>,
    features_key: Option<String>,
    skip_missing: bool,
    require_targets: bool,
) -> EvaluateRequest {
    EvaluateRequest {
        csv,
        tiles: TileOptions {
            features_key,
            skip_missing,
            ..TileOptions::new(features.unwrap_or_default())
        },
        require_targets,
    }
}

/// Applies a trained model to a labelled cohort: writes `metrics.json` and
/// `predictions.csv` (and `predictions_slides.csv` with `per_slide`) into `out`.
#[pyfunction]
#[pyo3(signature = (model, csv, out, features=None, features_key=None, skip_missing=false,
    per_slide=false, force=false, device="flex"))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    py: Python<'_>,
    model: PathBuf,
    csv: PathBuf,
    out: PathBuf,
    features: Option<PathBuf>,
    features_key: Option<String>,
    skip_missing: bool,
    per_slide: bool,
    force: bool,
    device: &str,
) -> PyResult<()> {
    let device = self::device(device)?;
    let request = apply_request(csv, features, features_key, skip_missing, true);
    py.detach(|| -> Result<(), med_crossvit::Error> {
        check_output(&out, OutputKind::Evaluation, force)?;
        let bundle = ModelBundle::load(&model, &device)?;
        let evaluation = med_crossvit::eval::evaluate(&bundle, &request, &device, false, None)?;
        med_crossvit::eval::write_evaluation(&out, &bundle, &evaluation, per_slide)?;
        Ok(())
    })
    .map_err(to_py)
}

/// Predicts a cohort (labels optional) into the CSV `out` (and `X_slides.csv` beside it with
/// `per_slide`); with `attention`, writes each slide's attention files into that folder.
#[pyfunction]
#[pyo3(signature = (model, csv, out, features=None, features_key=None, skip_missing=false,
    per_slide=false, attention=None, force=false, device="flex"))]
#[allow(clippy::too_many_arguments)]
pub fn predict(
    py: Python<'_>,
    model: PathBuf,
    csv: PathBuf,
    out: PathBuf,
    features: Option<PathBuf>,
    features_key: Option<String>,
    skip_missing: bool,
    per_slide: bool,
    attention: Option<PathBuf>,
    force: bool,
    device: &str,
) -> PyResult<()> {
    let device = self::device(device)?;
    let request = apply_request(csv, features, features_key, skip_missing, false);
    let stem = out.file_stem().map_or_else(
        || "predictions".into(),
        |s| s.to_string_lossy().into_owned(),
    );
    let slides_out = out.with_file_name(format!("{stem}_slides.csv"));
    py.detach(|| -> Result<(), med_crossvit::Error> {
        check_output(&out, OutputKind::PredictionsFile, force)?;
        if per_slide {
            check_output(&slides_out, OutputKind::PredictionsFile, force)?;
        }
        if let Some(dir) = &attention {
            check_output(dir, OutputKind::Attention, force)?;
        }
        let bundle = ModelBundle::load(&model, &device)?;
        let (evaluation, _) = med_crossvit::inference::predict_cohort(
            &bundle,
            &request,
            &device,
            attention.as_deref(),
        )?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(RunFileError::io(parent))?;
        }
        med_crossvit::eval::write_predictions(&out, &bundle, &evaluation)?;
        if per_slide {
            med_crossvit::eval::write_slide_predictions(&slides_out, &bundle, &evaluation)?;
        }
        Ok(())
    })
    .map_err(to_py)
}

/// Checks a cohort as `check --json` does; returns its JSON object (`task`, the summary,
/// `problems`).
#[pyfunction]
#[pyo3(signature = (csv, features=None, features_key=None, settings="{}", detect_task=true,
    columns="{}", skip_missing=false))]
#[allow(clippy::too_many_arguments)]
pub fn check(
    py: Python<'_>,
    csv: PathBuf,
    features: Option<PathBuf>,
    features_key: Option<String>,
    settings: &str,
    detect_task: bool,
    columns: &str,
    skip_missing: bool,
) -> PyResult<String> {
    let settings = parse::<TrainSettings>("settings", serde_json::from_str(settings))?;
    let columns = parse::<CohortColumns>("columns", serde_json::from_str(columns))?;
    let source = DataSource {
        csv,
        features_dir: features.unwrap_or_default(),
        features_key,
        skip_missing,
    };
    let json = py.detach(|| {
        let check = training::check_cohort(&source, &columns, &settings, detect_task);
        let mut json = serde_json::json!({ "task": check.outcome.task() });
        if let Some(cohort) = &check.cohort {
            let survival = [
                settings.survival.time_column.as_str(),
                settings.survival.censorship_column.as_str(),
            ];
            let outcomes: Vec<&str> = survival
                .into_iter()
                .chain(check.outcome.columns(cohort.table()))
                .collect();
            let mut summary = med_crossvit::data::CohortSummary::with_outcomes(cohort, &outcomes);
            summary.unit = settings.unit.name().to_string();
            if settings.missing_modality == med_crossvit::data::MissingModality::Allow {
                summary.count_modalities(cohort);
            }
            if let serde_json::Value::Object(fields) =
                serde_json::to_value(&summary).expect("a summary serializes")
            {
                json.as_object_mut().expect("an object").extend(fields);
            }
        }
        json["problems"] = serde_json::to_value(check.problems.reports()).expect("serializes");
        json.to_string()
    });
    Ok(json)
}

/// Writes a synthetic cohort (as `med-crossvit synth`): returns the CSV's and the features
/// folder's paths.
#[pyfunction]
#[pyo3(signature = (out, slides=60, tiles=120, dim=64, genes=32, classes=2, seed=0,
    survival=false, missing=0.0))]
#[allow(clippy::too_many_arguments)]
pub fn synth(
    py: Python<'_>,
    out: PathBuf,
    slides: usize,
    tiles: usize,
    dim: usize,
    genes: usize,
    classes: usize,
    seed: u64,
    survival: bool,
    missing: f64,
) -> PyResult<(PathBuf, PathBuf)> {
    let options = med_crossvit::data::SynthOptions {
        slides,
        tiles,
        dim,
        genes,
        classes,
        seed,
        survival,
        compress: false,
        missing,
    };
    let cohort = py
        .detach(|| med_crossvit::data::write_synthetic_cohort(&out, &options))
        .map_err(|e| to_py(e.into()))?;
    Ok((cohort.csv, cohort.features_dir))
}
