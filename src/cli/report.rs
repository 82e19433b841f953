//! `med-crossvit report`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder: a single run, one fold of a cross-validation, or a cross-validation
    /// folder (cv.json and fold_0 … fold_K).
    #[arg(value_name = "RUN_DIR")]
    run_dir: PathBuf,
}

pub fn run(args: ReportArgs) -> Result<ExitCode, med_crossvit::Error> {
    let path = med_crossvit::report::write_report(&args.run_dir)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
