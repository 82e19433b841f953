//! `predict` and `evaluate` with `--model CV_RUN`: the folds of a cross-validation run
//! applied together (the library's [`evaluate_ensemble`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use med_crossvit::eval::{
    EnsembleEvaluation, EnsembleMethod, evaluate_ensemble, write_evaluation, write_fold_metrics,
    write_fold_predictions, write_predictions, write_slide_predictions,
};
use med_crossvit::run::{FoldEnsemble, OutputKind, RunError, RunFileError, check_output, files};
use med_crossvit::runtime::Precision;

use super::train::{ApplyArgs, report_skipped};

/// Loads the folds of `--model` and applies them to the cohort.
fn run(
    apply: &ApplyArgs,
    precision: Precision,
    require_targets: bool,
) -> Result<(FoldEnsemble, EnsembleEvaluation), med_crossvit::Error> {
    let method: EnsembleMethod = apply.ensemble.as_deref().unwrap_or("mean").parse()?;
    let device = super::device::parse(&apply.device)?;
    let ensemble = FoldEnsemble::load(&apply.model, &device)?;
    let request = apply.request(require_targets);
    let evaluation = precision.scope(|| {
        med_crossvit::progress::observe(super::progress::steps(), || {
            evaluate_ensemble(&ensemble, &request, &device, method)
        })
    })?;
    report_skipped(&evaluation.combined);
    Ok((ensemble, evaluation))
}

/// Refuses the attention export with an ensemble: each fold's attention is its own model's,
/// and an average over models that never saw each other's weights would be a picture of
/// no model; predict one `fold_K` folder for its attention.
pub fn refuse_attention(option: &str) -> med_crossvit::Error {
    RunError::BadOption {
        option: option.into(),
        why: "attention maps are drawn for one model: pass one of the run's fold_K folders \
              to --model (a fold ensemble has no attention of its own)"
            .into(),
    }
    .into()
}

/// Where `predict` writes the folds' own predictions: `X_folds.csv` beside `X.csv`.
pub fn folds_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "predictions".into());
    out.with_file_name(format!("{stem}_folds.csv"))
}

/// `predict --model CV_RUN`: the ensemble's predictions in `out` (with `slides_out` for
/// `--per-slide`), each fold's in `X_folds.csv`.
pub fn predict(
    apply: &ApplyArgs,
    out: &Path,
    slides_out: &Path,
    force: bool,
    precision: Precision,
) -> Result<ExitCode, med_crossvit::Error> {
    let folds_out = folds_path(out);
    check_output(&folds_out, OutputKind::PredictionsFile, force)?;
    let (ensemble, evaluation) = run(apply, precision, false)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(RunFileError::io(parent))?;
    }
    let first = ensemble.first();
    write_predictions(out, first, &evaluation.combined)?;
    if apply.per_slide {
        write_slide_predictions(slides_out, first, &evaluation.combined)?;
    }
    write_fold_predictions(&folds_out, &ensemble, &evaluation)?;
    println!(
        "wrote {} ({} patients, {} slides; {} of {} folds) and each fold's in {}",
        out.display(),
        evaluation.combined.predictions.patients.len(),
        evaluation.combined.predictions.slides.len(),
        method_name(evaluation.method),
        ensemble.folds.len(),
        folds_out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `evaluate --model CV_RUN`: the ensemble's metrics and predictions in `out`, each fold's
/// beside them.
pub fn evaluate(
    apply: &ApplyArgs,
    out: &Path,
    precision: Precision,
) -> Result<ExitCode, med_crossvit::Error> {
    let (ensemble, evaluation) = run(apply, precision, true)?;
    let combined = &evaluation.combined;
    let metrics = write_evaluation(out, ensemble.first(), combined, apply.per_slide)?;
    write_fold_predictions(
        &out.join(files::PREDICTIONS_FOLDS_CSV),
        &ensemble,
        &evaluation,
    )?;
    write_fold_metrics(out, &ensemble, &evaluation)?;
    let fold_metrics: Vec<_> = evaluation
        .folds
        .iter()
        .map(|f| f.metrics.clone().unwrap_or_default())
        .collect();
    print!("{:<18} {:>8}", "", method_name(evaluation.method));
    (0..fold_metrics.len()).for_each(|k| print!(" {:>8}", format!("fold_{k}")));
    println!();
    // The ensemble's loss is not defined (NaN): shown as `-`, as a metric not computed.
    let cell = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map_or("-".into(), |v| format!("{v:.4}"))
    };
    for (k, v) in metrics.scalars() {
        print!("{k:<18} {:>8}", cell(v));
        for m in &fold_metrics {
            let value = m.scalars().into_iter().find(|(n, _)| *n == k);
            print!(" {:>8}", cell(value.and_then(|(_, v)| v)));
        }
        println!();
    }
    println!(
        "{} patient(s), {} slide(s), {} folds; wrote {}, {}, {} and {}",
        combined.predictions.patients.len(),
        combined.predictions.slides.len(),
        ensemble.folds.len(),
        out.join(files::METRICS_JSON).display(),
        out.join(files::PREDICTIONS_CSV).display(),
        out.join(files::PREDICTIONS_FOLDS_CSV).display(),
        out.join(files::METRICS_FOLDS_JSON).display(),
    );
    Ok(ExitCode::SUCCESS)
}

/// The method's name as `--ensemble` takes it.
fn method_name(method: EnsembleMethod) -> &'static str {
    match method {
        EnsembleMethod::Mean => "mean",
        EnsembleMethod::Vote => "vote",
    }
}
