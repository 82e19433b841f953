//! Finite or stop: the training loop's checks that the loss, the gradients and the
//! validation predictions are finite numbers, and the error that names where they were not
//! and the likely cause, from the inputs of the batch.

use std::path::Path;

use burn::data::dataset::Dataset;

use crate::data::{CohortDataset, CohortTable, Modalities, Normalization};
use crate::eval::{Predictions, non_finite_patients};
use crate::run::{Error, NotFinite, RunError, TrainSettings};

/// Expression values the model is built for lie within a few units of 0 (z-scores): beyond
/// this the likely cause of a non-finite loss is the scale of the input.
const EXPRESSION_RANGE: f32 = 10.0;
/// Tile features beyond this are named as a likely cause.
const FEATURE_RANGE: f32 = 1.0e4;
/// Bags whose inputs are read to find the likely cause.
const BAGS_READ: usize = 64;

/// Where in a fit something was not finite, and what the run folder holds.
pub(super) struct Place<'a> {
    /// The fit's label (`training`, `fold 0 (1 of 3)`).
    pub label: &'a str,
    /// The epoch, from 1.
    pub epoch: usize,
    /// The batch and the batches of the epoch; `None` for the validation.
    pub batch: Option<(usize, usize)>,
    /// The run folder.
    pub out: &'a Path,
    /// Epochs whose checkpoint the folder holds.
    pub epochs_done: usize,
}

impl Place<'_> {
    /// The error for `what` being `value`, with the likely `cause`.
    pub(super) fn error(&self, what: &str, value: String, cause: String) -> Error {
        let at = match self.batch {
            Some((b, n)) => format!("{}, epoch {}, batch {b} of {n}", self.label, self.epoch),
            None => format!("{}, epoch {}, validation", self.label, self.epoch),
        };
        let resume = if self.epochs_done == 0 {
            format!(
                "nothing was saved for epoch {}: {} holds the run's settings and no checkpoint \
                 (`train --resume` starts it again from epoch 1; fix the cause first)",
                self.epoch,
                self.out.display()
            )
        } else {
            format!(
                "nothing was saved for epoch {}: {} keeps the checkpoint of epoch {} \
                 (`train --resume` goes on from there; fix the cause first)",
                self.epoch,
                self.out.display(),
                self.epochs_done
            )
        };
        RunError::NotFinite(Box::new(NotFinite {
            at,
            what: what.to_string(),
            value,
            cause,
            resume,
        }))
        .into()
    }
}

/// The likely cause of a non-finite loss or prediction, from the inputs of `bags` (indices
/// into `dataset`, at most [`BAGS_READ`] read): the largest absolute expression values with
/// their genes and patients, and the largest absolute tile feature. Inputs far outside what
/// the model expects are named as the cause; else the learning rate is suspected.
pub(super) fn likely_cause(
    dataset: &CohortDataset,
    bags: &[usize],
    normalization: &Normalization,
    table: &CohortTable,
    settings: &TrainSettings,
) -> String {
    let genes: Vec<String> = match normalization.columns_in(table) {
        Ok(columns) => columns.iter().map(|&c| table.genes()[c].clone()).collect(),
        Err(_) => Vec::new(),
    };
    // (|value|, value, gene, patient) of every expression value read; the largest feature.
    let mut values: Vec<(f32, f32, usize, usize)> = Vec::new();
    let mut feature = 0.0f32;
    for &i in bags.iter().take(BAGS_READ) {
        let Ok(item) = dataset.get(i) else { continue };
        for (g, &v) in item.expression.iter().enumerate() {
            values.push((magnitude(v), v, g, item.bag.patient));
        }
        feature = item
            .features
            .iter()
            .fold(feature, |m, &v| m.max(magnitude(v)));
    }
    values.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Each gene once, the largest first.
    let mut seen = std::collections::HashSet::new();
    values.retain(|v| seen.insert(v.2));
    let shown: Vec<String> = values
        .iter()
        .take(5)
        .map(|&(_, v, g, p)| {
            let gene = genes
                .get(g)
                .map_or_else(|| format!("gene {g}"), Clone::clone);
            let patient = dataset.patients().id(p);
            format!("{gene} = {} (patient {patient})", number(v))
        })
        .collect();
    let largest = values.first().map_or(0.0, |v| v.0);
    let method = settings.normalize_method().name();
    // A run on expression alone has no tile feature to speak of.
    let features = if settings.modalities == Modalities::Rna {
        String::new()
    } else {
        format!("; largest |tile feature| {}", number(feature))
    };
    if largest > EXPRESSION_RANGE {
        format!(
            "expression far outside the range the model expects (|x| ≲ {EXPRESSION_RANGE}) \
             after --normalize {method}: {}{features}. Scale the expression: --normalize \
             zscore for log-scale values, log2-zscore for counts, TPM or FPKM, and bound the \
             outliers that remain with --clip 10",
            shown.join(", ")
        )
    } else if feature > FEATURE_RANGE {
        format!(
            "tile features far outside the usual range{features}; the largest expression \
             values after --normalize {method}: {}",
            shown.join(", ")
        )
    } else {
        format!(
            "the inputs look ordinary (largest expression values after --normalize {method}: \
             {}{features}): the learning rate ({}) may be too high, try a lower --lr",
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            },
            settings.lr
        )
    }
}

/// Stops training when the validation `predictions` or their loss are not finite, naming the
/// patients and the likely cause from their inputs.
pub(super) fn check_validation(
    predictions: &Predictions,
    place: &Place<'_>,
    dataset: &CohortDataset,
    normalization: &Normalization,
    settings: &TrainSettings,
) -> Result<(), Error> {
    let bad = non_finite_patients(&predictions.patients);
    let loss = predictions.loss.unwrap_or(0.0);
    if bad.is_empty() && loss.is_finite() {
        return Ok(());
    }
    let patients: std::collections::HashSet<usize> = if bad.is_empty() {
        predictions.patients.iter().map(|p| p.patient).collect()
    } else {
        bad.iter()
            .map(|&i| predictions.patients[i].patient)
            .collect()
    };
    let bags: Vec<usize> = (0..dataset.bags().len())
        .filter(|&i| patients.contains(&dataset.bags()[i].patient))
        .collect();
    let cause = likely_cause(
        dataset,
        &bags,
        normalization,
        dataset.cohort().table(),
        settings,
    );
    Err(if bad.is_empty() {
        place.error("the validation loss", loss.to_string(), cause)
    } else {
        let first = dataset.patients().id(predictions.patients[bad[0]].patient);
        let value = format!(
            "{} of {} patients, first {first}",
            bad.len(),
            predictions.patients.len()
        );
        place.error("a validation prediction", value, cause)
    })
}

/// `v` for a message: 4 decimals, or 4 significant digits in scientific notation beyond 10⁵.
fn number(v: f32) -> String {
    if v.is_finite() && v.abs() < 1e5 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// `|v|`, with NaN counting as the largest of all.
fn magnitude(v: f32) -> f32 {
    if v.is_nan() { f32::INFINITY } else { v.abs() }
}

/// Names the test-only environment variable `MED_CROSSVIT_TEST_POISON`: `EPOCH@BATCH` (both
/// from 1) makes the inputs of that training batch NaN, as a diverging run's would be, so
/// that a test can check how training stops (tests/it/training.rs). Not for users.
pub const POISON_VAR: &str = "MED_CROSSVIT_TEST_POISON";

/// Test-only: whether [`POISON_VAR`] names this epoch and batch.
pub(super) fn poisoned(epoch: usize, batch: usize) -> bool {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AT.get_or_init(|| std::env::var(POISON_VAR).ok())
        .as_deref()
        .is_some_and(|at| at == format!("{epoch}@{batch}"))
}
