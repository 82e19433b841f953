//! [`DataError`]: bad cohort files, each error naming the file, row, column or value at fault;
//! [`CohortProblems`]: every problem of a cohort, grouped by [`ProblemKind`], each kind with
//! the hint that fixes it (a [`DataError::Cohort`] holds them, so they live here). This file
//! imports nothing else from `data/` but the message helpers of `text.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::text::cut;

/// A cohort CSV, a tile-feature file or a split that cannot be used.
///
/// Rows are CSV line numbers as an editor shows them (the header is line 1).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CSV file that cannot be parsed (ragged rows, bad quoting, not UTF-8).
    #[error("{path}: line {line}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// What the CSV parser said.
        message: String,
    },
    /// A required column is absent.
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the header has.
        available: String,
    },
    /// No column is a gene column by the rule in force.
    #[error("{path}: no gene columns: {rule}")]
    NoGeneColumns {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        rule: String,
    },
    /// Two rows of one patient that disagree on what must be the patient's own: the label,
    /// the survival time or censorship, or the expression.
    #[error("{0}")]
    PatientMismatch(Box<PatientMismatch>),
    /// Rows without expression (every gene cell empty), not allowed: all listed.
    #[error(
        "{path}: {} row(s) have no expression (every gene cell empty); pass --missing-modality allow to train and predict on them from their slides alone:\n{}",
        rows.len(),
        rows.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n")
    )]
    MissingRna {
        /// The file.
        path: PathBuf,
        /// `line N (slide `x`)` of each.
        rows: Vec<String>,
    },
    /// Genes a model was trained on that the cohort lacks.
    #[error(
        "{path}: {} of the model's {expected} genes are not gene columns here, e.g. {}",
        missing.len(),
        missing.iter().take(5).map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
    )]
    MissingGenes {
        /// The file.
        path: PathBuf,
        /// How many genes the model has.
        expected: usize,
        /// The model's genes the file lacks.
        missing: Vec<String>,
    },
    /// A cell that is empty, not a number, NaN or infinite where a finite number is needed.
    #[error(
        "{path}: line {line} (slide `{}`), column `{}`: {reason}: `{}`",
        cut(slide),
        cut(column),
        cut(value)
    )]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The slide id of the row.
        slide: String,
        /// The column.
        column: String,
        /// The cell as written.
        value: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// An empty cell in a column that needs a value (slide id, label).
    #[error("{path}: line {line}: empty `{column}`")]
    EmptyCell {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The column.
        column: String,
    },
    /// The same slide id on two rows.
    #[error(
        "{path}: slide `{}` appears twice, on lines {first} and {second}",
        cut(slide)
    )]
    DuplicateSlide {
        /// The file.
        path: PathBuf,
        /// The slide id.
        slide: String,
        /// Its first line.
        first: u64,
        /// Its second line.
        second: u64,
    },
    /// The cohort has a different number of genes than expected.
    #[error("{path}: {got} gene columns, but the model expects rna_num_genes = {expected}")]
    GeneCount {
        /// The file.
        path: PathBuf,
        /// Genes the model expects.
        expected: usize,
        /// Gene columns in the file.
        got: usize,
    },
    /// The gene columns differ from those the model was trained on.
    #[error(
        "{path}: gene column {index} is `{got}`, but the model was trained with `{expected}` there"
    )]
    GeneNames {
        /// The file.
        path: PathBuf,
        /// Position among the gene columns.
        index: usize,
        /// The name the model expects.
        expected: String,
        /// The name in the file.
        got: String,
    },
    /// Tile-feature files that do not exist. Lists every one.
    #[error("{} tile-feature file(s) missing:\n{}", missing.len(), list_missing(missing))]
    MissingFiles {
        /// `(slide id, paths tried)` for each missing slide.
        missing: Vec<(String, Vec<PathBuf>)>,
    },
    /// A file that is not readable HDF5 (truncated, corrupt, not HDF5).
    #[error("{path}: not a readable HDF5 file: {message}")]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// A `.pt` file that is not a readable `torch.save` file.
    #[error("{path}: not a readable PyTorch tensor file: {message}")]
    Torch {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No dataset of a known features name.
    #[error("{path}: no features dataset: looked for {tried}; the file has {found}")]
    NoFeatures {
        /// The file.
        path: PathBuf,
        /// The names looked for.
        tried: String,
        /// The datasets the file has.
        found: String,
    },
    /// A features or coordinates dataset of the wrong rank, shape or type.
    #[error("{path}: dataset `{dataset}`: {message}")]
    BadDataset {
        /// The file.
        path: PathBuf,
        /// The dataset.
        dataset: String,
        /// What is wrong with it.
        message: String,
    },
    /// A slide whose feature width differs from the cohort's or the model's.
    #[error("{path}: features are {got} wide, but {reference} has {expected}")]
    FeatureWidth {
        /// The file.
        path: PathBuf,
        /// The expected width.
        expected: usize,
        /// The file's width.
        got: usize,
        /// Where the expected width comes from (another slide, or `wsi_dim`).
        reference: String,
    },
    /// A tile-feature file with no tile.
    #[error("{path}: slide `{slide}` has 0 tiles")]
    EmptyBag {
        /// The file.
        path: PathBuf,
        /// The slide.
        slide: String,
    },
    /// A label in an evaluation split that training never saw.
    #[error(
        "slide `{slide}`: label `{label}` never occurs in the training data (classes: {known})"
    )]
    UnseenLabel {
        /// The slide.
        slide: String,
        /// Its label.
        label: String,
        /// The classes training knows.
        known: String,
    },
    /// A split that cannot be made or read.
    #[error("split: {0}")]
    Split(String),
    /// A settings value that cannot work (bag size 0, an unknown option).
    #[error("{setting}: {message}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// Why it cannot work.
        message: String,
    },
    /// Several problems, each naming its slide or file.
    #[error("{} problems:\n{}", .0.len(), list_problems(.0))]
    Problems(Vec<DataError>),
    /// A field of a file beside a model (`config.json`, `normalization.json`, `labels.json`)
    /// whose value cannot work: these files are copied and edited by hand, so they are checked
    /// like any input.
    #[error("{path}: field `{field}`: {reason}")]
    BadField {
        /// The file.
        path: PathBuf,
        /// The field, as a path into the JSON (`training.batch_size`, `std[3]`).
        field: String,
        /// Why its value cannot work.
        reason: String,
    },
    /// A CSV file with no text at all.
    #[error("{path}: empty file (a CSV file needs a header line and rows)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A CSV file with a header line and no row below it.
    #[error("{path}: the file has a header (line 1) but no rows")]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A CSV file whose header is one column holding a `;` or a tab: not comma-separated.
    #[error(
        "{path}: the header is one column containing {}: the columns must be separated by commas \
         (save the file as comma-separated CSV)",
        if *found == '\t' { "tabs".to_string() } else { format!("`{found}`") }
    )]
    Delimiter {
        /// The file.
        path: PathBuf,
        /// The separator found in the header.
        found: char,
    },
    /// A column name on several columns of one file: which one is meant is ambiguous.
    #[error(
        "{path}: column `{}` appears {} times, at positions {} (counted from 1); rename or \
         remove all but one",
        cut(column),
        positions.len(),
        positions.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    )]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The name.
        column: String,
        /// The positions of the columns of that name, counted from 1.
        positions: Vec<usize>,
    },
    /// Every problem found in a cohort, grouped by kind, each group with the hint that fixes
    /// it (see [`CohortProblems`]).
    #[error("{0}")]
    Cohort(CohortProblems),
    /// A JSON file (normalization, labels) that cannot be read.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// Two rows of one patient that disagree (see [`DataError::PatientMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: patient `{}` has rows that disagree: column `{column}` is `{}` on line {first_line} but `{}` on line {second_line}",
    cut(patient),
    cut(first),
    cut(second)
)]
pub struct PatientMismatch {
    /// The file.
    pub path: PathBuf,
    /// The patient.
    pub patient: String,
    /// The first column that differs.
    pub column: String,
    /// The first row's line.
    pub first_line: u64,
    /// Its value there.
    pub first: String,
    /// The disagreeing row's line.
    pub second_line: u64,
    /// Its value there.
    pub second: String,
}

/// The missing slides, one line each, with the paths tried.
fn list_missing(missing: &[(String, Vec<PathBuf>)]) -> String {
    missing
        .iter()
        .map(|(slide, tried)| {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            format!("  slide `{slide}`: tried {}", tried.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The problems, one indented line each.
fn list_problems(problems: &[DataError]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DataError {
    /// A [`DataError::BadField`].
    pub(crate) fn bad_field(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::BadField {
            path: path.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`DataError::Io`] naming `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
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
