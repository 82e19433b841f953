//! The end of a fit: the kept checkpoint (the best or the last epoch) evaluated once more on
//! the validation and the test patients, with intervals, its metrics files and plots, and the
//! [`FitReport`].

use std::path::PathBuf;

use burn::tensor::Device;

use super::checkpoint::LoopState;
use super::prepare::{Fit, FitData, Inputs, evaluation_dataset};
use crate::data::{Target, TimeBins};
use crate::eval::{
    EpochRow, Metrics, Predictions, SurvivalEval, classification_png, km_png, predict,
    task_metrics as metrics, with_intervals,
};
use crate::model::MedCrossViT;
use crate::run::{Error, RunError, Select, Task, files, save_json};

/// What a fit ended with.
#[derive(Debug, Clone)]
pub struct FitReport {
    /// The run folder.
    pub out: PathBuf,
    /// The best epoch (from 1), chosen on the validation metric.
    pub best_epoch: usize,
    /// The epoch whose weights the run keeps and reports (`settings.select`): the best or
    /// the last.
    pub epoch: usize,
    /// Validation metrics of the kept checkpoint.
    pub val: Metrics,
    /// Test metrics of the kept checkpoint, when the split has a test side.
    pub test: Option<Metrics>,
    /// One row per epoch.
    pub history: Vec<EpochRow>,
    /// Whether the run has finished (false when stopped by `stop_after`).
    pub finished: bool,
    /// The kept checkpoint's validation predictions and the targets (by patient) they are
    /// scored against, once the run has finished: the fold's out-of-fold predictions.
    pub out_of_fold: Option<(Predictions, Vec<Target>, Option<TimeBins>)>,
}

/// The report of a fit that ended with `state`. Once it has finished, the writing process
/// (`writer`) evaluates the kept checkpoint on `device` and writes its files.
pub(super) fn finish(
    job: &Fit<'_>,
    data: &FitData,
    state: LoopState,
    device: &Device,
    writer: bool,
) -> Result<FitReport, Error> {
    let (best_epoch, _, _) = state.best.ok_or_else(|| RunError::Checkpoint {
        path: job.out.clone(),
        message: "no epoch has completed".into(),
    })?;
    let kept = match job.settings.select {
        Select::Best => best_epoch,
        Select::Last => state.epochs_done,
    };
    let mut report = FitReport {
        out: job.out.clone(),
        best_epoch,
        epoch: kept,
        val: state.history[kept - 1].val.clone(),
        test: None,
        history: state.history,
        finished: state.finished,
        out_of_fold: None,
    };
    if report.finished && writer {
        evaluate_kept(job, data, device, &mut report)?;
    }
    Ok(report)
}

/// Evaluates the kept checkpoint (`model.bpk`) on the validation and the test patients into
/// `report`, and writes its metrics files and plots.
fn evaluate_kept(
    job: &Fit<'_>,
    data: &FitData,
    device: &Device,
    report: &mut FitReport,
) -> Result<(), Error> {
    let (settings, out) = (job.settings, &job.out);
    let inputs = &data.inputs;
    let mut best = job.model.init(device)?;
    best.load_weights(out.join(crate::model::WEIGHTS_FILE))?;
    let predictions = predict(
        &best,
        data.val_dataset.clone(),
        settings,
        device,
        false,
        None,
    )?;
    let val = intervals(job, inputs, report.val.clone(), &predictions);
    save_json(&val, &out.join(files::METRICS_JSON))?;
    plots(job, &inputs.targets, &predictions, &val)?;
    report.val = val;
    report.out_of_fold = Some((predictions, inputs.targets.clone(), inputs.bins.clone()));
    if !job.split.test.is_empty() {
        report.test = Some(test_metrics(job, data, &best, device)?);
    }
    Ok(())
}

/// The kept checkpoint's metrics on the test patients, written to `test_metrics.json`.
fn test_metrics(
    job: &Fit<'_>,
    data: &FitData,
    best: &MedCrossViT,
    device: &Device,
) -> Result<Metrics, Error> {
    let (settings, inputs) = (job.settings, &data.inputs);
    let dataset = evaluation_dataset(job, inputs, &job.split.test)?;
    let predictions = predict(best, dataset, settings, device, false, None)?;
    let m = metrics(
        &predictions,
        &inputs.targets,
        settings.task,
        job.prepared.labels.len(),
    )?;
    let m = intervals(job, inputs, m, &predictions);
    save_json(&m, &job.out.join(files::TEST_METRICS_JSON))?;
    Ok(m)
}

/// `m` of `predictions` with its intervals; the weighted survival metrics estimate censoring
/// on the training patients.
fn intervals(job: &Fit<'_>, inputs: &Inputs, m: Metrics, predictions: &Predictions) -> Metrics {
    let training = job.prepared.patients.among(&job.split.train);
    let n = predictions.patients.len();
    let weighted = inputs
        .bins
        .as_ref()
        .map(|b| SurvivalEval::new(b, n, &inputs.targets, training.iter().copied(), "training"));
    with_intervals(
        m,
        &predictions.patients,
        &inputs.targets,
        job.settings,
        job.prepared.labels.len(),
        weighted.as_ref(),
    )
}

/// The validation plots of the kept checkpoint: Kaplan–Meier, or ROC and confusion.
fn plots(
    job: &Fit<'_>,
    targets: &[Target],
    predictions: &Predictions,
    val: &Metrics,
) -> Result<(), Error> {
    let out = &job.out;
    match job.settings.task {
        Task::Survival => km_png(
            &out.join(files::KM_PNG),
            &predictions.patients,
            targets,
            job.settings,
            "validation",
        ),
        Task::Classification => classification_png(
            out,
            &predictions.patients,
            targets,
            &job.prepared.labels.classes,
            val,
            "validation",
        ),
    }
}
