//! Applying a model and measuring it: predictions per slide and per patient, the training
//! losses, the metrics of each task, the survival math, plots, and applying a saved run to a
//! cohort.
//!
//! Used by training (validation and test metrics, plots of each fit), by
//! [`inference`](crate::inference) and by [`report`](crate::report). [`evaluate`] is what
//! `med-crossvit evaluate` and `predict` run: a run folder applied to a cohort, writing
//! `predictions.csv` and `metrics.json`; [`evaluate_ensemble`] applies every fold of a
//! cross-validation run and combines them.

mod ensemble;
mod evaluate;
mod loss;
pub mod metrics;
pub(crate) mod plot;
mod predict;
mod sources;
pub mod survival;

pub use ensemble::{
    EnsembleEvaluation, EnsembleMethod, evaluate_ensemble, vote, write_fold_metrics,
    write_fold_predictions,
};
pub use evaluate::{
    EvaluateRequest, Evaluation, evaluate, write_evaluation, write_metrics, write_predictions,
    write_slide_predictions,
};
pub(crate) use evaluate::{output_cells, output_header, write_csv};
pub use loss::{batch_loss, inverse_frequency};
pub use metrics::{EpochRow, Metrics};
pub(crate) use plot::{classification_png, km_png};
pub use predict::{
    BatchHook, PatientPrediction, Predictions, SlidePrediction, SurvivalEval,
    metrics as task_metrics, non_finite_patients, patient_predictions, predict, survival_at,
    with_intervals,
};
pub(crate) use predict::{PartialPredictions, outcome_pairs, predict_bags, to_rows};
pub use sources::{check_some_modality, no_features, usable_sources};
