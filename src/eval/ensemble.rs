//! Fold ensembles: every fold model of a cross-validation run applied to one cohort, their
//! predictions combined.
//!
//! Each fold is applied as a single model folder is ([`evaluate`]), with its own expression
//! normalization (fitted on its own training patients), its own bags and, for survival, its
//! own time bins. The folds' predictions are then combined per patient (and per slide):
//!
//! - [`EnsembleMethod::Mean`], classification: the mean of the folds' class probabilities
//!   (and, for the record, of their logits); the class predicted is the most probable.
//! - [`EnsembleMethod::Mean`], survival: the mean of the folds' per-bin hazards `h̄_k`, the
//!   survival curve recomputed from them (`S_k = Π_{j≤k} (1 − h̄_j)`) and the risk
//!   `−Σ_k S_k` from that curve: averaging the hazards keeps the model's own parameterization
//!   (a discrete-time hazard per bin), as a patient's slides are averaged (`--unit slide`),
//!   while averaging risks would give a number with no survival curve behind it. A fold's
//!   bin `k` is the `k`-th quantile interval of its training patients' event times; the
//!   ensemble's bins are the folds' edges averaged (each fold's edges increase, so their
//!   mean does too), used to score times against the curve (the `label` bin and the
//!   time-dependent metrics).
//! - [`EnsembleMethod::Vote`], classification: each fold votes for its most probable class;
//!   the class with most votes wins, a tie going to the tied class of highest mean
//!   probability (then the lowest index). The probabilities reported (and the AUC) are the
//!   mean probabilities; accuracy, balanced accuracy and the confusion matrix use the vote.
//!   Survival has no classes to vote on: refused.
//!
//! The ensemble's loss is not defined (it has no bags of its own): `null` in its metrics.

use std::path::Path;
use std::str::FromStr;

use burn::tensor::Device;
use serde::Serialize;

use super::evaluate::{EvaluateRequest, Evaluation, evaluate};
use super::metrics::Metrics;
use super::predict::{
    PatientPrediction, Predictions, SlidePrediction, SurvivalEval, argmax, metrics, with_intervals,
};
use super::survival::risk_from_hazards;
use crate::data::{Target, TimeBins};
use crate::run::{Error, FoldEnsemble, ModelBundle, RunError, Task, same_in_folds as same};

/// How the folds' predictions are combined (see [`evaluate_ensemble`] and docs/ensembles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnsembleMethod {
    /// Mean probabilities (classification) or mean hazards (survival).
    #[default]
    Mean,
    /// Majority of the folds' classes (classification only).
    Vote,
}

impl FromStr for EnsembleMethod {
    type Err = RunError;

    fn from_str(s: &str) -> Result<Self, RunError> {
        match s {
            "mean" => Ok(Self::Mean),
            "vote" => Ok(Self::Vote),
            other => Err(RunError::Unknown {
                what: "ensemble method",
                name: other.into(),
                choices: "mean, vote".into(),
            }),
        }
    }
}

/// The result of a fold ensemble over a cohort.
#[derive(Debug)]
pub struct EnsembleEvaluation {
    /// How the folds were combined.
    pub method: EnsembleMethod,
    /// Each fold's own evaluation, in fold order.
    pub folds: Vec<Evaluation>,
    /// The combined predictions (and their metrics when the cohort has targets), on the
    /// first fold's cohort, patients and targets (for survival, binned by `bins`).
    pub combined: Evaluation,
    /// Survival: the ensemble's time bins (the folds' edges averaged).
    pub bins: Option<TimeBins>,
}

/// Applies every fold of `ensemble` to the cohort of `request` (each as [`evaluate`] applies
/// a model folder) and combines their predictions by `method`.
///
/// # Errors
///
/// [`RunError::BadOption`] for a vote over survival models; the errors of [`evaluate`] for
/// each fold; [`RunError::FoldMismatch`] when the folds predicted different patients or
/// slides (which folds that agree on their inputs cannot do).
pub fn evaluate_ensemble(
    ensemble: &FoldEnsemble,
    request: &EvaluateRequest,
    device: &Device,
    method: EnsembleMethod,
) -> Result<EnsembleEvaluation, Error> {
    let first = ensemble.first();
    if method == EnsembleMethod::Vote && first.task() == Task::Survival {
        return Err(RunError::BadOption {
            option: "--ensemble vote".into(),
            why: "survival models predict hazards, not classes to vote on; use --ensemble mean \
                  (the mean of the folds' hazards)"
                .into(),
        }
        .into());
    }
    let mut folds = Vec::with_capacity(ensemble.folds.len());
    for (dir, bundle) in &ensemble.folds {
        let evaluation = evaluate(bundle, request, device, false, None)?;
        if let Some(reference) = folds.first() {
            check_same_units(&ensemble.folds[0].0, reference, dir, &evaluation)?;
        }
        folds.push(evaluation);
    }
    let bins = mean_bins(ensemble);
    let combined = combine(&folds, first, method, bins.as_ref())?;
    Ok(EnsembleEvaluation {
        method,
        folds,
        combined,
        bins,
    })
}

/// Checks that fold `b` predicted the same slides and patients as fold `a`.
fn check_same_units(
    a_dir: &Path,
    a: &Evaluation,
    b_dir: &Path,
    b: &Evaluation,
) -> Result<(), RunError> {
    let slides =
        |e: &Evaluation| -> Vec<usize> { e.predictions.slides.iter().map(|s| s.slide).collect() };
    let patients = |e: &Evaluation| -> Vec<usize> {
        e.predictions.patients.iter().map(|p| p.patient).collect()
    };
    same(a_dir, b_dir, "slides predicted", &slides(a), &slides(b))?;
    same(
        a_dir,
        b_dir,
        "patients predicted",
        &patients(a),
        &patients(b),
    )
}

/// The ensemble's survival time bins: the folds' edges averaged (`None` for classification).
fn mean_bins(ensemble: &FoldEnsemble) -> Option<TimeBins> {
    let all: Vec<&TimeBins> = ensemble
        .folds
        .iter()
        .map(|(_, b)| b.config.survival_bins.as_ref())
        .collect::<Option<_>>()?;
    let n = all.len() as f64;
    let edges = (0..all[0].edges.len())
        .map(|i| all.iter().map(|b| b.edges[i]).sum::<f64>() / n)
        .collect();
    Some(TimeBins { edges })
}

/// The folds' predictions of one unit (a slide or a patient) combined: the mean logits, the
/// mean probabilities (hazards), and with a vote the voted class.
fn combine_outputs(
    outputs: &[(&[f64], &[f64])],
    method: EnsembleMethod,
) -> (Vec<f64>, Vec<f64>, Option<usize>) {
    let n = outputs.len() as f64;
    let mean = |values: Vec<&[f64]>| -> Vec<f64> {
        (0..values[0].len())
            .map(|c| values.iter().map(|v| v[c]).sum::<f64>() / n)
            .collect()
    };
    let logits = mean(outputs.iter().map(|o| o.0).collect());
    let probs = mean(outputs.iter().map(|o| o.1).collect());
    let voted = (method == EnsembleMethod::Vote).then(|| {
        let classes: Vec<usize> = outputs.iter().map(|o| argmax(o.1)).collect();
        vote(&classes, &probs)
    });
    (logits, probs, voted)
}

/// The majority of `classes` (one per fold), a tie going to the tied class of highest
/// `mean_probs`, then to the lowest index.
pub fn vote(classes: &[usize], mean_probs: &[f64]) -> usize {
    let mut counts = vec![0usize; mean_probs.len()];
    for &c in classes {
        counts[c] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    (0..counts.len())
        .filter(|&c| counts[c] == most)
        .fold(None, |best: Option<usize>, c| match best {
            Some(b) if mean_probs[b] >= mean_probs[c] => Some(b),
            _ => Some(c),
        })
        .unwrap_or(0)
}

/// The combined evaluation of `folds` (see [`EnsembleEvaluation::combined`]).
fn combine(
    folds: &[Evaluation],
    first: &ModelBundle,
    method: EnsembleMethod,
    bins: Option<&TimeBins>,
) -> Result<Evaluation, Error> {
    let survival = first.task() == Task::Survival;
    let risk = |probs: &[f64]| survival.then(|| risk_from_hazards(probs));
    let base = &folds[0];
    let slides = (0..base.predictions.slides.len())
        .map(|i| {
            let outputs: Vec<(&[f64], &[f64])> = folds
                .iter()
                .map(|f| {
                    let s = &f.predictions.slides[i];
                    (&s.logits[..], &s.probs[..])
                })
                .collect();
            let (logits, probs, voted) = combine_outputs(&outputs, method);
            SlidePrediction {
                risk: risk(&probs),
                logits,
                probs,
                voted,
                ..base.predictions.slides[i].clone()
            }
        })
        .collect();
    let patients = (0..base.predictions.patients.len())
        .map(|i| {
            let outputs: Vec<(&[f64], &[f64])> = folds
                .iter()
                .map(|f| {
                    let p = &f.predictions.patients[i];
                    (&p.logits[..], &p.probs[..])
                })
                .collect();
            let (logits, probs, voted) = combine_outputs(&outputs, method);
            PatientPrediction {
                risk: risk(&probs),
                logits,
                probs,
                voted,
                ..base.predictions.patients[i].clone()
            }
        })
        .collect();
    let predictions = Predictions {
        slides,
        patients,
        loss: None,
    };
    let targets: Vec<Target> = match bins {
        Some(bins) => base
            .targets
            .iter()
            .map(|t| Target {
                class: t.time.map(|time| bins.bin(f64::from(time))).or(t.class),
                ..*t
            })
            .collect(),
        None => base.targets.clone(),
    };
    let known = targets.iter().any(|t| t.class.is_some());
    let metrics = known
        .then(|| ensemble_metrics(first, &predictions, &targets, bins))
        .transpose()?;
    Ok(Evaluation {
        cohort: base.cohort.clone(),
        patients: base.patients.clone(),
        targets,
        predictions,
        metrics,
    })
}

/// The task's metrics of the combined predictions with their intervals, as
/// [`evaluate`] computes a single model's (survival: scored with the ensemble's `bins`, the
/// censoring estimated on the patients evaluated).
fn ensemble_metrics(
    first: &ModelBundle,
    predictions: &Predictions,
    targets: &[Target],
    bins: Option<&TimeBins>,
) -> Result<Metrics, Error> {
    let classes = first.labels.len();
    let m = metrics(predictions, targets, first.task(), classes)?;
    let weighted = bins.map(|b| {
        SurvivalEval::new(
            b,
            predictions.patients.len(),
            targets,
            predictions.patients.iter().map(|p| p.patient),
            "evaluated",
        )
    });
    Ok(with_intervals(
        m,
        &predictions.patients,
        targets,
        &first.config.training,
        classes,
        weighted.as_ref(),
    ))
}

/// Writes each fold's predictions in one CSV: a `fold` column (0 for `fold_0`), then the
/// columns of [`write_predictions`](super::write_predictions), one row per fold and patient.
///
/// # Errors
///
/// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the file.
pub fn write_fold_predictions(
    path: &Path,
    ensemble: &FoldEnsemble,
    evaluation: &EnsembleEvaluation,
) -> Result<(), Error> {
    let first = ensemble.first();
    let base = &evaluation.combined;
    let table = base.cohort.table();
    let known = base.targets.iter().any(|t| t.class.is_some());
    let mut header = vec![
        "fold".to_string(),
        table.patient_id_column().to_string(),
        "slides".to_string(),
        "modalities".to_string(),
    ];
    header.extend(super::output_header(
        &first.labels,
        &first.config.training,
        known,
    ));
    let mut rows = vec![header];
    for (k, ((_, bundle), fold)) in ensemble.folds.iter().zip(&evaluation.folds).enumerate() {
        for p in &fold.predictions.patients {
            let mut row = vec![
                k.to_string(),
                fold.patients.id(p.patient).to_string(),
                p.slides.to_string(),
                p.modalities().to_string(),
            ];
            row.extend(super::output_cells(
                &bundle.labels,
                &bundle.config.training,
                known,
                p.shown(),
                fold.targets[p.patient],
            ));
            rows.push(row);
        }
    }
    super::write_csv(path, rows)
}

/// One fold's metrics in `metrics_folds.json`.
#[derive(Debug, Serialize)]
struct FoldMetrics<'a> {
    /// The fold number (0 for `fold_0`).
    fold: usize,
    /// Its folder.
    model: &'a Path,
    /// Its metrics on the cohort.
    metrics: &'a Metrics,
}

/// Writes `metrics_folds.json` into `dir`: a list of `{fold, model, metrics}`, each fold's
/// metrics on the cohort (the ensemble's own go to `metrics.json`).
///
/// # Errors
///
/// [`RunFileError::Io`](crate::run::RunFileError::Io) naming the file.
pub fn write_fold_metrics(
    dir: &Path,
    ensemble: &FoldEnsemble,
    evaluation: &EnsembleEvaluation,
) -> Result<(), Error> {
    let empty = Metrics::default();
    let list: Vec<FoldMetrics<'_>> = ensemble
        .folds
        .iter()
        .zip(&evaluation.folds)
        .enumerate()
        .map(|(fold, ((model, _), e))| FoldMetrics {
            fold,
            model,
            metrics: e.metrics.as_ref().unwrap_or(&empty),
        })
        .collect();
    Ok(crate::run::save_json(
        &list,
        &dir.join(crate::run::files::METRICS_FOLDS_JSON),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_goes_to_the_majority_then_to_the_higher_mean_probability() {
        assert_eq!(vote(&[1, 1, 0], &[0.9, 0.1]), 1);
        // One vote each for 0 and 2: class 2 has the higher mean probability.
        assert_eq!(vote(&[0, 2], &[0.3, 0.3, 0.4]), 2);
        assert_eq!(vote(&[2, 0], &[0.4, 0.2, 0.4]), 0);
        // Class 1 gets no vote, however probable on average.
        assert_eq!(vote(&[0, 2], &[0.2, 0.5, 0.3]), 2);
    }

    #[test]
    fn the_mean_of_hazards_makes_the_curve_and_the_risk() {
        let a = [0.2, 0.5];
        let b = [0.4, 0.1];
        let (_, h, voted) = combine_outputs(
            &[(&[0.0, 0.0][..], &a[..]), (&[0.0, 0.0][..], &b[..])],
            EnsembleMethod::Mean,
        );
        assert_eq!(voted, None);
        assert!((h[0] - 0.3).abs() < 1e-12 && (h[1] - 0.3).abs() < 1e-12);
        // S = 0.7, 0.49 → risk −1.19.
        assert!((risk_from_hazards(&h) + 1.19).abs() < 1e-12);
        assert!("median".parse::<EnsembleMethod>().is_err());
        assert_eq!(
            "vote".parse::<EnsembleMethod>().unwrap(),
            EnsembleMethod::Vote
        );
    }
}
