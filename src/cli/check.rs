//! `med-crossvit check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use med_crossvit::data::{
    Cohort, CohortColumns, CohortSummary, CohortTable, DataError, TileOptions,
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
    #[command(flatten)]
    columns: ColumnArgs,
}

/// CSV column names, shared by the commands that read a cohort.
#[derive(Debug, Args)]
pub struct ColumnArgs {
    /// Slide id column.
    #[arg(long, default_value = "wsi_file_name")]
    slide_column: String,
    /// Label column.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Patient id column (absent: each slide is its own patient).
    #[arg(long, default_value = "patient_id")]
    patient_column: String,
    /// Project column (features sub-folder).
    #[arg(long, default_value = "project")]
    project_column: String,
    /// Prefix of the gene columns.
    #[arg(long, default_value = "rna_")]
    gene_prefix: String,
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
        }
    }
}

pub fn run(args: CheckArgs) -> Result<ExitCode, med_crossvit::Error> {
    let table = CohortTable::read(&args.csv, &args.columns.columns())?;
    let mut problems = Vec::new();
    if let Err(e) = table.labels() {
        problems.push(e);
    }
    if table.is_empty() {
        problems.push(DataError::Setting {
            setting: "csv",
            message: format!("{} has no slide rows", args.csv.display()),
        });
    }
    let options = TileOptions {
        features_key: args.features_key.clone(),
        ..TileOptions::new(&args.features)
    };
    let (cohort, scan_problems) = Cohort::scan(table, &options);
    problems.extend(scan_problems);
    let summary = CohortSummary::of(&cohort);
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
