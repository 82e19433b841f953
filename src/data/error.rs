//! [`DataError`]: bad cohort files, each error naming the file, row, column or value at fault.

use std::path::PathBuf;

use super::csvfile::cut;

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
    /// it (see [`CohortProblems`](super::CohortProblems)).
    #[error("{0}")]
    Cohort(super::CohortProblems),
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

fn list_problems(problems: &[DataError]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DataError {
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

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
