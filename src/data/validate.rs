//! [`validate`]: the one validation of a cohort, which `med-crossvit check` and training both
//! run, so that `check` reports exactly what training would refuse; [`CohortProblems`]: every
//! problem found, grouped by [`ProblemKind`], each kind with the hint that fixes it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::{
    Cohort, CohortColumns, CohortTable, DataError, Modalities, Patients, TileOptions, parse_finite,
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

/// What kind a cohort problem is: the problems of one kind are fixed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The CSV file itself: unreadable, malformed, empty, without rows, not comma-separated,
    /// without gene columns.
    File,
    /// A column name on several columns.
    DuplicateColumn,
    /// A column the task needs is absent.
    MissingColumn,
    /// An empty slide id, patient id or label.
    EmptyCell,
    /// A slide id on two rows.
    DuplicateSlide,
    /// An expression cell that is not a finite number.
    BadExpression,
    /// Rows without expression, not allowed.
    MissingRna,
    /// A survival time or censorship that cannot be used.
    BadOutcome,
    /// Too few classes or event times for the task.
    TooFewOutcomes,
    /// A patient whose rows disagree.
    PatientMismatch,
    /// Tile-feature files that do not exist.
    MissingFiles,
    /// A tile-feature file that cannot be used.
    TileFile,
    /// Patients with neither tiles nor expression.
    NoModality,
    /// Anything else.
    Other,
}

impl ProblemKind {
    /// The kind of `error`, as a problem of a cohort.
    pub fn of(error: &DataError) -> Self {
        match error {
            DataError::Io { .. }
            | DataError::Csv { .. }
            | DataError::EmptyFile { .. }
            | DataError::NoRows { .. }
            | DataError::Delimiter { .. }
            | DataError::NoGeneColumns { .. } => Self::File,
            DataError::DuplicateColumn { .. } => Self::DuplicateColumn,
            DataError::MissingColumn { .. } => Self::MissingColumn,
            DataError::EmptyCell { .. } => Self::EmptyCell,
            DataError::DuplicateSlide { .. } => Self::DuplicateSlide,
            DataError::BadValue { .. } => Self::BadExpression,
            DataError::MissingRna { .. } => Self::MissingRna,
            DataError::PatientMismatch(_) => Self::PatientMismatch,
            DataError::MissingFiles { .. } => Self::MissingFiles,
            DataError::Hdf5 { .. }
            | DataError::Torch { .. }
            | DataError::NoFeatures { .. }
            | DataError::BadDataset { .. }
            | DataError::FeatureWidth { .. }
            | DataError::EmptyBag { .. } => Self::TileFile,
            _ => Self::Other,
        }
    }

    /// What a group of this kind is called.
    pub fn title(self) -> &'static str {
        match self {
            Self::File => "unusable file",
            Self::DuplicateColumn => "duplicated column names",
            Self::MissingColumn => "missing columns",
            Self::EmptyCell => "empty required cells",
            Self::DuplicateSlide => "repeated slide ids",
            Self::BadExpression => "bad expression values",
            Self::MissingRna => "rows without expression",
            Self::BadOutcome => "bad survival values",
            Self::TooFewOutcomes => "too few outcomes",
            Self::PatientMismatch => "patients whose rows disagree",
            Self::MissingFiles => "missing tile-feature files",
            Self::TileFile => "unusable tile-feature files",
            Self::NoModality => "patients without tiles or expression",
            Self::Other => "other problems",
        }
    }

    /// How to fix the problems of this kind.
    pub fn hint(self) -> &'static str {
        match self {
            Self::File => {
                "save the cohort as a comma-separated CSV with one header line and one row per \
                 slide; name the gene columns with --gene-prefix, --gene-suffix or --gene-regex"
            }
            Self::DuplicateColumn => {
                "rename or remove the repeated columns so that each name appears once (which \
                 one is meant would otherwise be a guess)"
            }
            Self::MissingColumn => {
                "name the columns with --slide-column, --label-column, --time-column or \
                 --censorship-column, or choose the task with --task"
            }
            Self::EmptyCell => "fill in these cells, or remove their rows",
            Self::DuplicateSlide => "list each slide on one row: remove the repeated rows",
            Self::BadExpression => {
                "expression cells must be finite numbers; a row without expression leaves all \
                 its gene cells empty (with --missing-modality allow)"
            }
            Self::MissingRna => {
                "add their expression, or pass --missing-modality allow to use them from their \
                 slides alone"
            }
            Self::BadOutcome => {
                "survival times must be finite and 0 or more, censorship 1 (censored) or 0 \
                 (event)"
            }
            Self::TooFewOutcomes => {
                "classification needs at least 2 classes; survival needs more distinct event \
                 times than --bins"
            }
            Self::PatientMismatch => {
                "a patient's rows must agree on its label, survival time, censorship and \
                 expression: correct them, or give the slides their own patient ids"
            }
            Self::MissingFiles => {
                "check --features (files are {dir}/{project}/{slide}.h5 or {dir}/{slide}.h5, \
                 or .pt), pass --skip-missing to leave these slides out, or --missing-modality \
                 allow to use them from their expression alone"
            }
            Self::TileFile => {
                "replace or re-extract these files, or name the features dataset with \
                 --features-key"
            }
            Self::NoModality => {
                "give these patients a tile file or expression, or remove their rows"
            }
            Self::Other => "see each message",
        }
    }
}

/// One problem of a cohort.
#[derive(Debug)]
pub struct Problem {
    /// Its kind.
    pub kind: ProblemKind,
    /// The error, naming the file, line, column or slide.
    pub error: DataError,
}

/// A problem as `check --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemReport {
    /// Its kind (`bad_expression`, `missing_files`, …).
    pub kind: ProblemKind,
    /// The message.
    pub message: String,
    /// How to fix the problems of this kind.
    pub hint: &'static str,
}

/// Every problem of a cohort, in the order found. Displayed grouped by kind, each group with
/// its hint.
#[derive(Debug, Default)]
pub struct CohortProblems {
    problems: Vec<Problem>,
}

/// How many problems of one kind the text lists; the rest are counted.
const LISTED_PER_KIND: usize = 20;

impl CohortProblems {
    /// Adds `error`, of the kind [`ProblemKind::of`] gives.
    pub fn push(&mut self, error: DataError) {
        self.push_kind(ProblemKind::of(&error), error);
    }

    /// Adds `error` as a problem of `kind`.
    pub fn push_kind(&mut self, kind: ProblemKind, error: DataError) {
        // Several problems in one error are listed one by one.
        match error {
            DataError::Problems(list) => list.into_iter().for_each(|e| self.push(e)),
            error => self.problems.push(Problem { kind, error }),
        }
    }

    /// The problems, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems grouped by kind (kinds in [`ProblemKind`] order, problems in the order
    /// found).
    pub fn grouped(&self) -> BTreeMap<ProblemKind, Vec<&Problem>> {
        let mut groups: BTreeMap<ProblemKind, Vec<&Problem>> = BTreeMap::new();
        for p in &self.problems {
            groups.entry(p.kind).or_default().push(p);
        }
        groups
    }

    /// The problems as `check --json` prints them, grouped by kind.
    pub fn reports(&self) -> Vec<ProblemReport> {
        self.grouped()
            .into_values()
            .flatten()
            .map(|p| ProblemReport {
                kind: p.kind,
                message: p.error.to_string(),
                hint: p.kind.hint(),
            })
            .collect()
    }

    /// `Ok` without problems, else every problem as one [`DataError::Cohort`] (a single
    /// problem as itself).
    ///
    /// # Errors
    ///
    /// As said.
    pub fn into_result(mut self) -> Result<(), DataError> {
        match self.problems.len() {
            0 => Ok(()),
            1 => Err(self.problems.remove(0).error),
            _ => Err(DataError::Cohort(self)),
        }
    }
}

impl std::fmt::Display for CohortProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problem(s):", self.problems.len())?;
        for (kind, problems) in self.grouped() {
            write!(f, "\n{} ({}):", kind.title(), problems.len())?;
            for p in problems.iter().take(LISTED_PER_KIND) {
                let text = p.error.to_string().replace('\n', "\n    ");
                write!(f, "\n  - {text}")?;
            }
            if problems.len() > LISTED_PER_KIND {
                write!(
                    f,
                    "\n  - … and {} more of this kind",
                    problems.len() - LISTED_PER_KIND
                )?;
            }
            write!(f, "\n  hint: {}", kind.hint())?;
        }
        Ok(())
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
