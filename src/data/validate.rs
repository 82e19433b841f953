//! [`validate`]: the one validation of a cohort, which `med-crossvit check` and training both
//! run, so that `check` reports exactly what training would refuse, as [`CohortProblems`]:
//! every problem found, grouped by [`ProblemKind`], each kind with the hint that fixes it.

use std::collections::HashSet;
use std::path::Path;

use super::{
    Cohort, CohortColumns, CohortProblems, CohortTable, DataError, Modalities, Patients,
    ProblemKind, TileOptions, parse_finite,
};

/// What the cohort's outcome is read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A class label per slide, in the label column.
    Classification,
    /// A survival time and a censorship (1 = censored, 0 = event) per slide.
    Survival {
        /// The time column.
        time: String,
        /// The censorship column.
        censorship: String,
    },
    /// Survival (with these columns) when the table has both survival columns and no label
    /// column, else classification.
    Detect {
        /// The time column.
        time: String,
        /// The censorship column.
        censorship: String,
    },
}

impl Outcome {
    /// This outcome for `table`: [`Detect`](Self::Detect) resolved.
    pub fn resolve(&self, table: &CohortTable) -> Self {
        match self {
            Self::Detect { time, censorship } => {
                if !table.has_column(&table.columns().label)
                    && table.has_column(time)
                    && table.has_column(censorship)
                {
                    Self::Survival {
                        time: time.clone(),
                        censorship: censorship.clone(),
                    }
                } else {
                    Self::Classification
                }
            }
            other => other.clone(),
        }
    }

    /// The task's name: `classification`, `survival`, or `unknown` for an unresolved
    /// [`Detect`](Self::Detect).
    pub fn task(&self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::Survival { .. } => "survival",
            Self::Detect { .. } => "unknown",
        }
    }

    /// The columns that belong to a patient rather than a slide (its rows must agree on
    /// them): the label, or the survival time and censorship.
    pub fn columns<'a>(&'a self, table: &'a CohortTable) -> Vec<&'a str> {
        match self {
            Self::Classification => vec![table.columns().label.as_str()],
            Self::Survival { time, censorship } | Self::Detect { time, censorship } => {
                vec![time.as_str(), censorship.as_str()]
            }
        }
    }
}

/// A cohort as validated: the cohort (when its CSV could be read), the outcome checked, and
/// every problem found.
#[derive(Debug)]
pub struct CohortCheck {
    /// The cohort; `None` when its CSV could not be read into a table.
    pub cohort: Option<Cohort>,
    /// The outcome checked ([`Outcome::Detect`] resolved when the table was read).
    pub outcome: Outcome,
    /// Every problem.
    pub problems: CohortProblems,
}

/// Validates a cohort for `outcome` and a run on `modalities`: reads the CSV
/// (`tiles.allow_missing` also allowing rows without expression; see
/// [`CohortTable::scan_for`] for one modality alone), checks the outcome cells, the agreement of each patient's rows, the
/// tile-feature files and that every patient has tiles or expression, and returns every
/// problem found rather than the first. Training refuses a cohort with any of them; `check`
/// lists them.
pub fn validate(
    csv: &Path,
    columns: &CohortColumns,
    tiles: &TileOptions,
    outcome: &Outcome,
    modalities: Modalities,
) -> CohortCheck {
    let mut problems = CohortProblems::default();
    let scan = CohortTable::scan_for(csv, columns, tiles.allow_missing, modalities);
    let (table, row_problems) = match scan {
        Ok(read) => read,
        Err(e) => {
            problems.push(e);
            return CohortCheck {
                cohort: None,
                outcome: outcome.clone(),
                problems,
            };
        }
    };
    row_problems.into_iter().for_each(|e| problems.push(e));
    let outcome = outcome.resolve(&table);
    outcome_problems(&table, &outcome, &mut problems);
    let patients = Patients::of(&table);
    for e in patients.mismatches(&table, &outcome.columns(&table)) {
        problems.push(e);
    }
    // Expression alone reads no tile file: the width of its (empty) bags is the model's,
    // set when the model is known.
    let cohort = if modalities == Modalities::Rna {
        Cohort::without_tiles(table, 0)
    } else {
        let (cohort, scan) = Cohort::scan(table, tiles);
        scan.into_iter().for_each(|e| problems.push(e));
        cohort
    };
    // A run on one modality leaves out the patients that lack it.
    if modalities == Modalities::Both
        && let Err(e) = some_modality(&cohort, &patients)
    {
        problems.push_kind(ProblemKind::NoModality, e);
    }
    CohortCheck {
        cohort: Some(cohort),
        outcome,
        problems,
    }
}

/// Adds the problems of the outcome cells: a missing column; for classification an empty
/// label or fewer than 2 classes; for survival a time that is not a finite number of 0 or
/// more, a censorship other than 0 or 1.
fn outcome_problems(table: &CohortTable, outcome: &Outcome, problems: &mut CohortProblems) {
    let records = table.slides();
    match outcome {
        Outcome::Survival { time, censorship } | Outcome::Detect { time, censorship } => {
            for (column, check) in [
                (time, check_time as fn(f64) -> Option<&'static str>),
                (censorship, check_censorship),
            ] {
                let Some(cells) = table.column(column) else {
                    problems.push(table.missing_column(column));
                    continue;
                };
                for (cell, record) in cells.iter().zip(records) {
                    let reason = match parse_finite(cell) {
                        Ok(v) => check(v),
                        Err(reason) => Some(reason),
                    };
                    if let Some(reason) = reason {
                        problems.push_kind(
                            ProblemKind::BadOutcome,
                            DataError::BadValue {
                                path: table.path().to_path_buf(),
                                line: record.line,
                                slide: record.slide.clone(),
                                column: column.clone(),
                                value: cell.clone(),
                                reason,
                            },
                        );
                    }
                }
            }
        }
        Outcome::Classification => {
            let label = &table.columns().label;
            if !table.has_column(label) {
                problems.push(table.missing_column(label));
                return;
            }
            for record in records.iter().filter(|r| r.label.is_none()) {
                problems.push(DataError::EmptyCell {
                    path: table.path().to_path_buf(),
                    line: record.line,
                    column: label.clone(),
                });
            }
            let classes: HashSet<&str> =
                records.iter().filter_map(|r| r.label.as_deref()).collect();
            if !records.is_empty() && classes.len() < 2 {
                problems.push_kind(
                    ProblemKind::TooFewOutcomes,
                    DataError::Setting {
                        setting: "label",
                        message: format!(
                            "classification needs at least 2 classes; {} has {}",
                            table.path().display(),
                            classes.len()
                        ),
                    },
                );
            }
        }
    }
}

fn check_time(t: f64) -> Option<&'static str> {
    (t < 0.0).then_some("survival times cannot be negative")
}

fn check_censorship(c: f64) -> Option<&'static str> {
    (c != 0.0 && c != 1.0).then_some("censorship must be 1 (censored) or 0 (event)")
}

/// Checks that every patient taking part has tiles or expression (with missing modalities
/// allowed, one may lack either, not both).
///
/// # Errors
///
/// [`DataError::Setting`] naming the patients with neither.
pub fn some_modality(cohort: &Cohort, patients: &Patients) -> Result<(), DataError> {
    let table = cohort.table();
    let members: HashSet<usize> = cohort.members().into_iter().collect();
    let neither: Vec<String> = (0..patients.len())
        .filter(|&p| patients.slides(p).iter().any(|s| members.contains(s)))
        .filter(|&p| {
            !patients.has_rna(table, p) && !patients.slides(p).iter().any(|&s| cohort.has_wsi(s))
        })
        .map(|p| format!("`{}`", patients.id(p)))
        .collect();
    if neither.is_empty() {
        return Ok(());
    }
    Err(DataError::Setting {
        setting: "missing modality",
        message: format!(
            "{}: {} patient(s) have neither a tile file nor expression: {}",
            table.path().display(),
            neither.len(),
            neither.join(", ")
        ),
    })
}
