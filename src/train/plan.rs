//! From a cohort and settings to what a fit needs: targets, splits, label names, time bins.

use std::collections::HashSet;
use std::sync::Arc;

use crate::data::{
    Cohort, CohortCheck, CohortColumns, CohortTable, DataError, LabelMap, MissingModality,
    Modalities, Normalization, Outcome, Patients, ProblemKind, ScaleReport, Split, Target,
    TileOptions, TimeBins, by_fractions, check_patients, from_csv, kfold, parse_finite,
    scale_report, split_files, validate,
};
use crate::run::{DataSource, Error, Task, TrainSettings};

/// Per-patient outcome as read from the CSV.
#[derive(Debug, Clone)]
pub enum Outcomes {
    /// Class index per patient.
    Classes(Vec<usize>),
    /// `(time, censored)` per patient.
    Survival(Vec<(f64, bool)>),
}

/// A cohort ready for splitting and fitting.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The cohort with its files.
    pub cohort: Arc<Cohort>,
    /// Its slides grouped by patient.
    pub patients: Arc<Patients>,
    /// Class names (for survival: `bin_0`, `bin_1`, …).
    pub labels: LabelMap,
    /// Outcomes per patient.
    pub outcomes: Outcomes,
    /// Stratum per slide for splitting (its patient's class, or survival bin over the whole
    /// cohort).
    pub strata: Vec<usize>,
}

/// The one validation of a cohort for training, which `med-crossvit check` runs too:
/// [`validate`] for the task of `settings` (or, with `detect_task`, the task the table's
/// columns suggest: see [`Outcome::Detect`]), then, for survival, whether the uncensored
/// times make `settings.survival.bins` distinct bins. Every problem is in the result.
pub fn check_cohort(
    source: &DataSource,
    columns: &CohortColumns,
    settings: &TrainSettings,
    detect_task: bool,
) -> CohortCheck {
    let s = &settings.survival;
    let (time, censorship) = (s.time_column.clone(), s.censorship_column.clone());
    let outcome = match (detect_task, settings.task) {
        (true, _) => Outcome::Detect { time, censorship },
        (false, Task::Survival) => Outcome::Survival { time, censorship },
        (false, Task::Classification) => Outcome::Classification,
    };
    let options = TileOptions {
        features_dir: source.features_dir.clone(),
        features_key: source.features_key.clone(),
        skip_missing: source.skip_missing,
        allow_missing: settings.missing_modality == MissingModality::Allow,
    };
    let mut check = validate(
        &source.csv,
        columns,
        &options,
        &outcome,
        settings.modalities,
    );
    if settings.modalities != Modalities::Rna && source.features_dir.as_os_str().is_empty() {
        check.problems.push(crate::eval::no_features());
    }
    if let (Some(cohort), Outcome::Survival { .. }, true) =
        (&check.cohort, &check.outcome, check.problems.is_empty())
    {
        let patients = Patients::of(cohort.table());
        let pairs = survival_pairs(cohort.table(), settings);
        let per_patient: Vec<(f64, bool)> = (0..patients.len())
            .map(|p| pairs[patients.slides(p)[0]])
            .collect();
        let all: Vec<usize> = (0..patients.len()).collect();
        if let Err(e) = fit_bins(&per_patient, &all, s.bins) {
            check.problems.push_kind(ProblemKind::TooFewOutcomes, e);
        }
    }
    check
}

/// `(time, censored)` of every slide; the cells were checked by [`check_cohort`].
fn survival_pairs(table: &CohortTable, settings: &TrainSettings) -> Vec<(f64, bool)> {
    let s = &settings.survival;
    let cells = |column: &str| -> Vec<f64> {
        table
            .column(column)
            .map(|cells| {
                cells
                    .iter()
                    .map(|c| parse_finite(c).unwrap_or(f64::NAN))
                    .collect()
            })
            .unwrap_or_default()
    };
    let times = cells(&s.time_column);
    let censorship = cells(&s.censorship_column);
    times
        .into_iter()
        .zip(censorship)
        .map(|(t, c)| (t, c == 1.0))
        .collect()
}

/// Reads the cohort and its outcomes.
///
/// # Errors
///
/// Every problem [`check_cohort`] finds, at once (grouped in a [`DataError::Cohort`] when
/// there are several): the cohort's [`DataError`]s; a missing label column (classification)
/// or time or censorship column (survival); a negative time, a censorship other than 0 or 1;
/// a patient whose rows disagree on the outcome or the expression; fewer than two classes;
/// too few distinct event times for the survival bins.
pub fn prepare(
    source: &DataSource,
    columns: &CohortColumns,
    settings: &TrainSettings,
) -> Result<Prepared, Error> {
    let check = check_cohort(source, columns, settings, false);
    check.problems.into_result()?;
    let cohort = Arc::new(check.cohort.expect("a cohort without problems was read"));
    let table = cohort.table();
    let patients = Patients::of(table);
    // Outcomes are the patient's: those of its first row (its rows agree).
    let first: Vec<usize> = (0..patients.len()).map(|p| patients.slides(p)[0]).collect();
    let (labels, outcomes, strata) = match settings.task {
        Task::Classification => {
            let names = table.labels()?;
            let labels = LabelMap::fit(names.iter().copied());
            let classes: Vec<usize> = names
                .iter()
                .map(|n| labels.index(n).expect("fitted on these labels"))
                .collect();
            let per_patient = first.iter().map(|&i| classes[i]).collect();
            (labels, Outcomes::Classes(per_patient), classes)
        }
        Task::Survival => {
            let s = &settings.survival;
            let pairs = survival_pairs(table, settings);
            let per_patient: Vec<(f64, bool)> = first.iter().map(|&i| pairs[i]).collect();
            let bins = fit_bins(
                &per_patient,
                &(0..patients.len()).collect::<Vec<_>>(),
                s.bins,
            )?;
            let strata = pairs.iter().map(|&(t, _)| bins.bin(t)).collect();
            let labels = LabelMap {
                classes: (0..s.bins).map(|k| format!("bin_{k}")).collect(),
            };
            (labels, Outcomes::Survival(per_patient), strata)
        }
    };
    Ok(Prepared {
        cohort,
        patients: Arc::new(patients),
        labels,
        outcomes,
        strata,
    })
}

impl Prepared {
    /// The same cohort, for a run on expression alone, with bags serving tiles of width
    /// `wsi_dim` (the model's; see [`Cohort::without_tiles`]). Other runs are unchanged.
    pub fn with_feature_dim(mut self, wsi_dim: usize) -> Self {
        if self.cohort.usable().is_empty() && self.cohort.feature_dim() != wsi_dim {
            let table = self.cohort.table().clone();
            self.cohort = Arc::new(Cohort::without_tiles(table, wsi_dim));
        }
        self
    }
}

/// The expression normalization of one fit: `settings`' method fitted on the training
/// patients of `split` that have expression, clipped at `settings.clip`; with tiles alone
/// ([`Modalities::Wsi`]) the identity of the model's one placeholder gene (nothing is read).
/// Also the [`ScaleReport`] of every patient of the split with expression (`None` with tiles
/// alone).
///
/// # Errors
///
/// The errors of [`Normalization::fit`] and [`scale_report`].
pub fn fit_normalization(
    prepared: &Prepared,
    split: &Split,
    settings: &TrainSettings,
) -> Result<(Normalization, Option<ScaleReport>), DataError> {
    if settings.modalities == Modalities::Wsi {
        return Ok((Normalization::identity_for(PLACEHOLDER_GENES), None));
    }
    let table = prepared.cohort.table();
    let patients = &prepared.patients;
    let rows = |slides: &[usize]| patients.rna_rows(table, patients.among(slides));
    // One row per training patient with expression.
    let normalization = Normalization::fit(
        table,
        &rows(&split.train),
        settings.normalize_method(),
        settings.top_genes,
    )?
    .with_clip(settings.clip.map(|c| c as f32));
    let all: Vec<usize> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .copied()
        .collect();
    let report = scale_report(table, &rows(&all), &normalization)?;
    Ok((normalization, Some(report)))
}

/// The estimated memory and time of training `model` on `split` (see
/// [`training_cost`](crate::model::cost::training_cost)): its first epoch's training bags and its
/// validation bags, at `settings`' batch and bag sizes.
pub fn cost_of(
    prepared: &Prepared,
    split: &Split,
    model: &crate::model::MedCrossViTConfig,
    settings: &TrainSettings,
) -> crate::model::cost::TrainingCost {
    let sources = |slides: &[usize]| {
        crate::eval::usable_sources(&prepared.cohort, &prepared.patients, slides, settings)
    };
    let inputs = crate::model::cost::CostInputs {
        batch: settings.batch_size,
        bag_size: settings.bags.bag_size,
        train_bags: crate::data::training_bags(
            &sources(&split.train),
            &settings.bags,
            settings.seed,
            0,
        )
        .len(),
        val_bags: crate::data::evaluation_bags(&sources(&split.val), settings.bags.bag_size).len(),
        gradient_checkpointing: settings.gradient_checkpointing,
    };
    crate::model::cost::training_cost(model, &inputs)
}

/// The number of genes of the model's RNA input in a run on tiles alone: one, always zero and
/// marked missing.
pub const PLACEHOLDER_GENES: usize = 1;

/// Time bins from the uncensored patients among `patients` (indices into `pairs`, one time
/// per patient), covering every time of the cohort.
fn fit_bins(pairs: &[(f64, bool)], patients: &[usize], bins: usize) -> Result<TimeBins, DataError> {
    let uncensored: Vec<f64> = patients
        .iter()
        .filter(|&&p| !pairs[p].1)
        .map(|&p| pairs[p].0)
        .collect();
    let all: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    TimeBins::fit(&uncensored, &all, bins).ok_or_else(|| DataError::Setting {
        setting: "survival.bins",
        message: format!(
            "{} uncensored patient(s) cannot make {bins} distinct time bins; use fewer bins",
            uncensored.len()
        ),
    })
}

/// The splits to fit: one per file of the splits folder; else one per fold with `folds`;
/// else one from the splits CSV or fractions. Slides without a usable file are left out of
/// every side. What a splits file names that the cohort lacks, and ids it lists twice on one
/// side, are reported through `warn`.
///
/// # Errors
///
/// The errors of [`split_files`], [`kfold`], [`by_fractions`] and [`from_csv`]; an empty
/// training or validation side; with both a splits folder and `folds`, a folder that does not
/// hold `folds` files (a resumed run whose folder changed).
pub fn splits(
    prepared: &Prepared,
    settings: &TrainSettings,
    folds: Option<usize>,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<Split>, Error> {
    let table = prepared.cohort.table();
    let mut read = |path: &std::path::Path| -> Result<Split, Error> {
        let read = from_csv(path, table)?;
        for warning in read.warnings(path) {
            warn(warning);
        }
        Ok(read.split)
    };
    // Where each split came from, named when one leaves a side empty.
    let mut origins: Vec<String> = Vec::new();
    let mut splits = match (&settings.splits_dir, folds, &settings.splits_csv) {
        (Some(dir), _, _) => {
            let files = split_files(dir)?;
            origins.extend(files.iter().map(|f| f.display().to_string()));
            if let Some(k) = folds
                && k != files.len()
            {
                return Err(DataError::Split(format!(
                    "{} now holds {} splits files, but the run has {k} folds",
                    dir.display(),
                    files.len()
                ))
                .into());
            }
            files
                .iter()
                .map(|f| read(f))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(k), _) => kfold(table, &prepared.strata, k, settings.seed)?,
        (None, None, Some(path)) => {
            origins.push(path.display().to_string());
            vec![read(path)?]
        }
        (None, None, None) => vec![by_fractions(
            table,
            &prepared.strata,
            settings.val_fraction,
            settings.test_fraction,
            settings.seed,
        )?],
    };
    let usable: HashSet<usize> = prepared.cohort.members().into_iter().collect();
    for (k, split) in splits.iter_mut().enumerate() {
        for side in [&mut split.train, &mut split.val, &mut split.test] {
            side.retain(|i| usable.contains(i));
        }
        check_patients(table, split)?;
        if split.train.is_empty() || split.val.is_empty() {
            let origin = origins.get(k).map_or_else(
                || format!("split {k}"),
                |file| format!("the split of {file}"),
            );
            return Err(DataError::Split(format!(
                "{origin} has {} training and {} validation slides of the cohort; both need at \
                 least one",
                split.train.len(),
                split.val.len()
            ))
            .into());
        }
    }
    Ok(splits)
}

/// Targets of every patient for `split`, and the time bins fitted on its training side.
///
/// # Errors
///
/// [`DataError::UnseenLabel`] for a validation or test slide whose class no training patient
/// has; the bin-fitting error for survival.
pub fn targets(
    prepared: &Prepared,
    split: &Split,
    settings: &TrainSettings,
) -> Result<(Vec<Target>, Option<TimeBins>), DataError> {
    targets_with(prepared, split, settings, None)
}

/// [`targets`], with survival times binned by `saved` bins (those of a run being resumed)
/// when given, instead of bins fitted on the training side.
pub(crate) fn targets_with(
    prepared: &Prepared,
    split: &Split,
    settings: &TrainSettings,
    saved: Option<TimeBins>,
) -> Result<(Vec<Target>, Option<TimeBins>), DataError> {
    let table = prepared.cohort.table();
    let patients = &prepared.patients;
    match &prepared.outcomes {
        Outcomes::Classes(classes) => {
            let class_of = |slide: usize| classes[patients.of_slide(slide)];
            let trained: HashSet<usize> = split.train.iter().map(|&i| class_of(i)).collect();
            let trained_names: Vec<&str> = prepared
                .labels
                .classes
                .iter()
                .enumerate()
                .filter(|(c, _)| trained.contains(c))
                .map(|(_, n)| n.as_str())
                .collect();
            if let Some(&i) = split
                .val
                .iter()
                .chain(&split.test)
                .find(|&&i| !trained.contains(&class_of(i)))
            {
                return Err(DataError::UnseenLabel {
                    slide: table.slides()[i].slide.clone(),
                    label: prepared.labels.classes[class_of(i)].clone(),
                    known: trained_names.join(", "),
                });
            }
            let targets = classes
                .iter()
                .map(|&c| Target {
                    class: Some(c),
                    ..Default::default()
                })
                .collect();
            Ok((targets, None))
        }
        Outcomes::Survival(pairs) => {
            let bins = match saved {
                Some(bins) => bins,
                None => fit_bins(pairs, &patients.among(&split.train), settings.survival.bins)?,
            };
            let targets = pairs
                .iter()
                .map(|&(t, c)| Target {
                    class: Some(bins.bin(t)),
                    time: Some(t as f32),
                    censored: Some(c),
                })
                .collect();
            Ok((targets, Some(bins)))
        }
    }
}
