//! `med-crossvit report`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use med_crossvit::report::ReportOptions;

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder: a single run, one fold of a cross-validation, or a cross-validation
    /// folder (cv.json and fold_0 … fold_K).
    #[arg(value_name = "RUN_DIR")]
    run_dir: PathBuf,
    /// A folder written by `med-crossvit heatmap` (with its heatmaps.csv) whose overlays
    /// and top tiles the report shows, besides RUN_DIR/heatmaps; repeatable. Its images
    /// are embedded in the page.
    #[arg(long = "heatmaps", value_name = "DIR")]
    heatmaps: Vec<PathBuf>,
}

/// Writes the report; a file of the run that could not be read is named on stderr, and the
/// command then exits with 1 (the page is written all the same, with the same notes).
pub fn run(args: ReportArgs) -> Result<ExitCode, med_crossvit::Error> {
    let options = ReportOptions {
        heatmaps: args.heatmaps,
    };
    let written = med_crossvit::report::write_report_with(&args.run_dir, &options)?;
    println!("wrote {}", written.path.display());
    if written.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for why in &written.problems {
        eprintln!("error: unreadable: {why}");
    }
    eprintln!(
        "error: {} file(s) of {} could not be read; the report notes them",
        written.problems.len(),
        args.run_dir.display()
    );
    Ok(ExitCode::FAILURE)
}
