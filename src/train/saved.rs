//! What a fit resumed from a checkpoint continues with: the normalization and time bins its
//! folder saved when it started, checked against the job and the cohort.

use std::path::Path;

use super::plan::Prepared;
use crate::data::{DataError, LabelMap, Normalization, TimeBins};
use crate::model::MedCrossViTConfig;
use crate::run::{Error, RunConfig, TrainSettings, check_companions, files};

/// The parts of a fit that its saved files must agree with.
pub(super) struct SavedJob<'a> {
    /// The fit's folder.
    pub out: &'a Path,
    /// Its training settings.
    pub settings: &'a TrainSettings,
    /// Its model's hyperparameters.
    pub model: &'a MedCrossViTConfig,
    /// The cohort it trains on.
    pub prepared: &'a Prepared,
}

/// What a checkpointed fit continues with: the normalization and survival time bins saved in
/// its folder (fitted when it started), after checking that the folder's files still fit the
/// job and the cohort.
pub(super) fn saved(job: &SavedJob<'_>) -> Result<(Normalization, Option<TimeBins>), Error> {
    let config = RunConfig::load(job.out)?;
    let config_path = job.out.join(files::CONFIG);
    for (field, same) in [
        ("training", config.training == *job.settings),
        ("model", config.model == *job.model),
    ] {
        if !same {
            return Err(DataError::bad_field(
                &config_path,
                field,
                "differs from the settings the run is resumed with (those of its \
                 cross-validation run's config.json)",
            )
            .into());
        }
    }
    let normalization = Normalization::load(job.out.join(files::NORMALIZATION))?;
    let labels = LabelMap::load(job.out.join(files::LABELS))?;
    check_companions(job.out, &config.model, &normalization, &labels)?;
    if normalization.log2 != config.training.log2_expression {
        return Err(DataError::bad_field(
            job.out.join(files::NORMALIZATION),
            "log2",
            format!(
                "{}, but config.json says training.log2_expression = {}; the run would go on \
                 with expression normalized otherwise than it started",
                normalization.log2, config.training.log2_expression
            ),
        )
        .into());
    }
    let table = job.prepared.cohort.table();
    if labels != job.prepared.labels {
        return Err(DataError::bad_field(
            job.out.join(files::LABELS),
            "classes",
            format!(
                "[{}], but {} now has the classes [{}]: the run cannot go on with other classes",
                labels.classes.join(", "),
                table.path().display(),
                job.prepared.labels.classes.join(", ")
            ),
        )
        .into());
    }
    normalization.columns_in(table)?;
    Ok((normalization, config.survival_bins))
}
