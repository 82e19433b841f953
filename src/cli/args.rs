//! Command-line options shared by several commands: the task, unit, modalities,
//! normalization and checkpoint choices, and the cohort CSV's column names.

use clap::{Args, ValueEnum};
use med_crossvit::data::{CohortColumns, MissingModality, Modalities, NormalizeMethod};
use med_crossvit::run::Select;

/// The task, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TaskArg {
    /// One label per slide.
    Classification,
    /// Survival time and censorship per slide.
    Survival,
}

/// The bag unit, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UnitArg {
    /// A patient's slides form one tile pool.
    Patient,
    /// Each slide is a bag source; predictions are averaged per patient.
    Slide,
}

/// Missing modalities, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MissingArg {
    /// An error listing every incomplete row.
    Error,
    /// Allowed.
    Allow,
}

impl MissingArg {
    /// The library's value.
    pub fn value(self) -> MissingModality {
        match self {
            Self::Error => MissingModality::Error,
            Self::Allow => MissingModality::Allow,
        }
    }
}

/// The modalities used, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModalitiesArg {
    /// Tiles and expression.
    Both,
    /// Tiles alone.
    Wsi,
    /// Expression alone.
    Rna,
}

impl ModalitiesArg {
    /// The library's value.
    pub fn value(self) -> Modalities {
        match self {
            Self::Both => Modalities::Both,
            Self::Wsi => Modalities::Wsi,
            Self::Rna => Modalities::Rna,
        }
    }
}

/// The expression scaling, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NormalizeArg {
    /// log2(x + 1), then a z-score.
    #[value(name = "log2-zscore")]
    Log2Zscore,
    /// A z-score.
    Zscore,
    /// The training range to [-1, 1].
    Minmax,
    /// No scaling.
    None,
}

/// The checkpoint kept, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SelectArg {
    /// The best epoch on the validation metric.
    Best,
    /// The last epoch trained.
    Last,
}

impl SelectArg {
    /// The library's value.
    pub fn value(self) -> Select {
        match self {
            Self::Best => Select::Best,
            Self::Last => Select::Last,
        }
    }
}

impl NormalizeArg {
    /// The library's value.
    pub fn method(self) -> NormalizeMethod {
        match self {
            Self::Log2Zscore => NormalizeMethod::Log2Zscore,
            Self::Zscore => NormalizeMethod::Zscore,
            Self::Minmax => NormalizeMethod::Minmax,
            Self::None => NormalizeMethod::None,
        }
    }
}

/// CSV column names, shared by the commands that read a cohort.
#[derive(Debug, Args)]
pub struct ColumnArgs {
    /// Slide id column (default `wsi_file_name`, or `slide_id` when the CSV has that and not
    /// the other).
    #[arg(long, default_value = "wsi_file_name")]
    slide_column: String,
    /// Label column.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Patient id column (default `patient_id`, or `case_id` when the CSV has that and not the
    /// other; absent: each slide is its own patient).
    #[arg(long, default_value = "patient_id")]
    patient_column: String,
    /// Project column (features sub-folder).
    #[arg(long, default_value = "project")]
    project_column: String,
    /// Gene columns are those whose name starts with this prefix. Without --gene-prefix,
    /// --gene-suffix or --gene-regex: `rna_*` columns, or if there are none `*_rnaseq` columns.
    #[arg(long, group = "genes")]
    gene_prefix: Option<String>,
    /// Gene columns are those whose name ends with this suffix (e.g. `_rnaseq`).
    #[arg(long, group = "genes")]
    gene_suffix: Option<String>,
    /// Gene columns are those whose name this regular expression matches.
    #[arg(long, group = "genes")]
    gene_regex: Option<String>,
}

impl ColumnArgs {
    /// The column names as the library takes them.
    pub fn columns(&self) -> CohortColumns {
        CohortColumns {
            slide: self.slide_column.clone(),
            project: self.project_column.clone(),
            label: self.label_column.clone(),
            patient: self.patient_column.clone(),
            gene_prefix: self.gene_prefix.clone(),
            gene_suffix: self.gene_suffix.clone(),
            gene_regex: self.gene_regex.clone(),
        }
    }
}
