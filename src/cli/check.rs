//! `med-crossvit check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use med_crossvit::data::{
    Cohort, CohortColumns, CohortSummary, CohortTable, DataError, Patients, TileOptions, Unit,
};

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The cohort CSV (one row per slide).
    #[arg(long)]
    csv: PathBuf,
    /// The features directory ({dir}/{project}/{slide}.h5 or {dir}/{slide}.h5).
    #[arg(long)]
    features: PathBuf,
    /// Name of the features dataset (default: the first of features, uni_features, feats,
    /// patch_embeddings).
    #[arg(long)]
    features_key: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// The task the cohort is for (default: survival when the CSV has the survival columns
    /// and no label column, else classification).
    #[arg(long, value_enum)]
    task: Option<super::train::TaskArg>,
    /// Survival time column.
    #[arg(long, default_value = "survival_months")]
    time_column: String,
    /// Censorship column (1 = censored).
    #[arg(long, default_value = "censorship")]
    censorship_column: String,
    /// Rows without expression or tile file: an error, or allowed (counted by modality).
    #[arg(long, value_enum, default_value = "error")]
    missing_modality: super::train::MissingArg,
    /// The bag unit training will use (see `train --unit`).
    #[arg(long, value_enum, default_value = "patient")]
    unit: super::train::UnitArg,
    /// Expression scaling whose value range is reported (as `train --normalize`).
    #[arg(long, value_enum, default_value = "log2-zscore")]
    normalize: super::train::NormalizeArg,
    #[command(flatten)]
    columns: ColumnArgs,
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

pub fn run(args: CheckArgs) -> Result<ExitCode, med_crossvit::Error> {
    let allow = matches!(args.missing_modality, super::train::MissingArg::Allow);
    let table = CohortTable::read_with(&args.csv, &args.columns.columns(), allow)?;
    let mut problems = Vec::new();
    let survival_columns = [args.time_column.as_str(), args.censorship_column.as_str()];
    let survival = match args.task {
        Some(task) => matches!(task, super::train::TaskArg::Survival),
        None => {
            !table.has_column(&table.columns().label)
                && survival_columns.iter().all(|c| table.has_column(c))
        }
    };
    let outcome_columns: Vec<&str> = if survival {
        for column in survival_columns {
            if let Err(e) = table.numeric_column(column) {
                problems.push(e);
            }
        }
        survival_columns.to_vec()
    } else {
        if let Err(e) = table.labels() {
            problems.push(e);
        }
        vec![table.columns().label.as_str()]
    };
    if let Err(e) = Patients::of(&table).check_agreement(&table, &outcome_columns) {
        problems.push(e);
    }
    let outcome_columns: Vec<String> = outcome_columns.iter().map(|c| c.to_string()).collect();
    if table.is_empty() {
        problems.push(DataError::Setting {
            setting: "csv",
            message: format!("{} has no slide rows", args.csv.display()),
        });
    }
    match med_crossvit::data::cohort_scale(&table, args.normalize.method(), None) {
        Ok(Some(scale)) => {
            if !args.json {
                println!("{scale}");
            }
            if let Some(warning) = scale.warning() {
                eprintln!("warning: {warning}");
            }
        }
        Ok(None) => {}
        // Training with this --normalize would fail the same way; the cohort itself is usable.
        Err(e) => eprintln!("warning: expression not scaled: {e}"),
    }
    let options = TileOptions {
        features_key: args.features_key.clone(),
        allow_missing: allow,
        ..TileOptions::new(&args.features)
    };
    let (cohort, scan_problems) = Cohort::scan(table, &options);
    problems.extend(scan_problems);
    let outcomes: Vec<&str> = survival_columns
        .iter()
        .copied()
        .chain(outcome_columns.iter().map(String::as_str))
        .collect();
    let mut summary = CohortSummary::with_outcomes(&cohort, &outcomes);
    summary.unit = match args.unit {
        super::train::UnitArg::Patient => Unit::Patient,
        super::train::UnitArg::Slide => Unit::Slide,
    }
    .name()
    .to_string();
    if allow {
        summary.count_modalities(&cohort);
    }
    if !args.json {
        println!(
            "task          {}",
            if survival {
                "survival"
            } else {
                "classification"
            }
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).expect("a summary serializes")
        );
    } else {
        println!("{summary}");
    }
    if problems.is_empty() {
        if !args.json {
            println!("ok: the cohort is usable");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{} problem(s):", problems.len());
    for p in &problems {
        eprintln!("- {p}");
    }
    Ok(ExitCode::from(1))
}
