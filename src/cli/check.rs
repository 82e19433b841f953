//! `med-crossvit check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use med_crossvit::data::{Cohort, CohortSummary, CohortTable, Outcome, ProblemReport, Unit};
use med_crossvit::run::{DataSource, SurvivalSettings, Task, TrainSettings};
use med_crossvit::train;
use serde::Serialize;

use super::args::ColumnArgs;

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The cohort CSV (one row per slide).
    #[arg(long)]
    csv: PathBuf,
    /// The features directory ({dir}/{project}/{slide}.h5 or {dir}/{slide}.h5); not needed
    /// with --modalities rna.
    #[arg(long)]
    features: Option<PathBuf>,
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
    task: Option<super::args::TaskArg>,
    /// Survival time column.
    #[arg(long, default_value = "survival_months")]
    time_column: String,
    /// Censorship column (1 = censored).
    #[arg(long, default_value = "censorship")]
    censorship_column: String,
    /// Survival time bins (as `train --bins`): survival needs enough distinct event times.
    #[arg(long, default_value_t = 4)]
    bins: usize,
    /// Rows without expression or tile file: an error, or allowed (counted by modality).
    #[arg(long, value_enum, default_value = "error")]
    missing_modality: super::args::MissingArg,
    /// Leave out slides whose tile file is missing (as `train --skip-missing`).
    #[arg(long)]
    skip_missing: bool,
    /// The bag unit training will use (see `train --unit`).
    #[arg(long, value_enum, default_value = "patient")]
    unit: super::args::UnitArg,
    /// The modalities training will use (as `train --modalities`): rna reads no tile file
    /// and needs no slide id, wsi reads no gene column.
    #[arg(long, value_enum, default_value = "both")]
    modalities: super::args::ModalitiesArg,
    /// Expression scaling whose value range is reported (as `train --normalize`).
    #[arg(long, value_enum, default_value = "log2-zscore")]
    normalize: super::args::NormalizeArg,
    #[command(flatten)]
    columns: ColumnArgs,
}

/// `check --json`: the task, the summary (when the CSV could be read) and every problem.
#[derive(Serialize)]
struct CheckJson<'a> {
    task: &'static str,
    #[serde(flatten)]
    summary: Option<&'a CohortSummary>,
    problems: Vec<ProblemReport>,
}

/// Runs `check`: the validation training runs ([`train::check_cohort`]), a summary of the
/// cohort, every problem grouped by kind with its hint; exit 1 with any problem.
pub fn run(args: CheckArgs) -> Result<ExitCode, med_crossvit::Error> {
    let settings = TrainSettings {
        task: match args.task {
            Some(super::args::TaskArg::Survival) => Task::Survival,
            _ => Task::Classification,
        },
        survival: SurvivalSettings {
            time_column: args.time_column.clone(),
            censorship_column: args.censorship_column.clone(),
            bins: args.bins,
            ..SurvivalSettings::default()
        },
        missing_modality: args.missing_modality.value(),
        modalities: args.modalities.value(),
        ..TrainSettings::default()
    };
    let source = DataSource {
        csv: args.csv.clone(),
        features_dir: args.features.clone().unwrap_or_default(),
        features_key: args.features_key.clone(),
        skip_missing: args.skip_missing,
    };
    let check = train::check_cohort(
        &source,
        &args.columns.columns(),
        &settings,
        args.task.is_none(),
    );
    let summary = check
        .cohort
        .as_ref()
        .map(|cohort| summarize(cohort, &check.outcome, &args));
    let task = check.outcome.task();
    if let Some(cohort) = &check.cohort {
        report_scale(cohort.table(), &args);
    }
    if args.json {
        let json = CheckJson {
            task,
            summary: summary.as_ref(),
            problems: check.problems.reports(),
        };
        println!(
            "{}",
            serde_json::to_string(&json).expect("a summary serializes")
        );
    } else {
        println!("task          {task}");
        if let Some(summary) = &summary {
            println!("{summary}");
        }
        if check.problems.is_empty() {
            println!("ok: the cohort is usable");
        }
    }
    if check.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        eprintln!("{}", check.problems);
    }
    Ok(ExitCode::from(1))
}

/// The summary of `cohort`, read for `outcome`.
fn summarize(cohort: &Cohort, outcome: &Outcome, args: &CheckArgs) -> CohortSummary {
    let survival = [args.time_column.as_str(), args.censorship_column.as_str()];
    let outcomes: Vec<&str> = survival
        .into_iter()
        .chain(outcome.columns(cohort.table()))
        .collect();
    let mut summary = CohortSummary::with_outcomes(cohort, &outcomes);
    summary.unit = match args.unit {
        super::args::UnitArg::Patient => Unit::Patient,
        super::args::UnitArg::Slide => Unit::Slide,
    }
    .name()
    .to_string();
    if matches!(args.missing_modality, super::args::MissingArg::Allow) {
        summary.count_modalities(cohort);
    }
    summary
}

/// Prints the expression range after `--normalize` (fitted on every patient with
/// expression) and warns, naming the genes, when values lie far outside what the model
/// expects. A method that cannot scale the values is a warning: the cohort itself is usable.
fn report_scale(table: &CohortTable, args: &CheckArgs) {
    match med_crossvit::data::cohort_scale(table, args.normalize.method(), None) {
        Ok(Some(scale)) => {
            if !args.json {
                println!("{scale}");
            }
            if let Some(warning) = scale.warning() {
                eprintln!("warning: {warning}");
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: expression not scaled: {e}"),
    }
}
