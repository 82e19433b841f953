//! Which bags a model is applied to: the slides and patients that have the modalities a
//! run uses, and the checks that every patient has at least one.

use crate::data::{BagSource, Cohort, DataError, Modalities, Patients, some_modality};
use crate::run::TrainSettings;

/// The bag sources of `slides` that have what `settings.modalities` uses: a unimodal
/// baseline leaves out the patients that lack its modality.
pub fn usable_sources(
    cohort: &Cohort,
    patients: &Patients,
    slides: &[usize],
    settings: &TrainSettings,
) -> Vec<BagSource> {
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

/// The error of a run that uses tiles but was given no features folder.
pub fn no_features() -> DataError {
    DataError::Setting {
        setting: "features",
        message: "no features folder given: --features DIR is needed unless the model uses \
                  expression alone (--modalities rna)"
            .into(),
    }
}

/// Checks that every patient has tiles or expression (with missing modalities allowed, one
/// may lack either, not both): [`some_modality`]. A run on one modality alone leaves out the
/// patients that lack it (see `usable_sources`), so it is not checked.
///
/// # Errors
///
/// [`DataError::Setting`] naming the patients with neither.
pub fn check_some_modality(
    cohort: &Cohort,
    patients: &Patients,
    modalities: Modalities,
) -> Result<(), DataError> {
    if modalities != Modalities::Both {
        return Ok(());
    }
    some_modality(cohort, patients)
}
