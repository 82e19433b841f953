//! Command-line parsing and the commands.

mod args;
mod bench;
mod check;
mod cohort;
mod device;
mod ensemble;
mod export;
mod heatmap;
mod predict;
mod progress;
mod report;
mod synth;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Med-CrossViT: fuse whole-slide-image tile features and RNA-Seq expression.
#[derive(Debug, Parser)]
#[command(name = "med-crossvit", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a cohort (CSV + tile-feature files) with the checks `train` runs: a summary,
    /// then every problem, grouped by kind with a hint for each; exit 1 if any.
    Check(check::CheckArgs),
    /// Build a cohort CSV from a data portal's download (`cohort gdc`).
    Cohort(cohort::CohortArgs),
    /// Write a synthetic cohort in the original's layout.
    Synth(synth::SynthArgs),
    /// Train a model (classification or survival; one split or cross-validation).
    Train(Box<train::TrainArgs>),
    /// Apply a trained model to a cohort: metrics.json and predictions.csv.
    Evaluate(train::EvaluateArgs),
    /// Predict a cohort (labels optional), with attention maps on request.
    Predict(predict::PredictArgs),
    /// Draw each slide's attention over its whole-slide image: `{slide}.png` overlays with a
    /// colour bar and the prediction, the most and least attended tiles cut from the slide,
    /// `{slide}.geojson` for QuPath (needs the `openslide` feature).
    Heatmap(Box<heatmap::HeatmapArgs>),
    /// Import a checkpoint trained with the Python original into a model folder.
    ImportTorch(predict::ImportArgs),
    /// Write a trained model's weights for PyTorch: a safetensors file or a torch.save state
    /// dict, its configuration, genes and classes in the metadata (docs/export.md).
    Export(export::ExportArgs),
    /// Time the model on random inputs: forward, training step, GFLOP/s, memory.
    Bench(bench::BenchArgs),
    /// Write RUN_DIR/report.html: headline results, data, per-fold metrics, plots, heatmaps over
    /// slides, top-attended tiles and settings of a
    /// run or cross-validation folder, in one self-contained file. Exits with 1, naming
    /// them, when files of the run exist but cannot be read.
    Report(report::ReportArgs),
}

/// Why a command failed: an error of training, evaluation or prediction, of a checkpoint
/// import or export, or of a GDC download (each names what was wrong).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// An error of a run (model, data, run folder).
    #[error(transparent)]
    Run(#[from] med_crossvit::Error),
    /// A PyTorch checkpoint that cannot be imported.
    #[error(transparent)]
    Import(#[from] med_crossvit::interop::ImportError),
    /// A model that cannot be exported as asked.
    #[error(transparent)]
    Export(#[from] med_crossvit::interop::ExportError),
    /// A GDC download that cannot be turned into a cohort.
    #[error(transparent)]
    Gdc(#[from] med_crossvit::cohort::gdc::GdcError),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    Ok(match cli.command {
        Command::Check(args) => check::run(args)?,
        Command::Cohort(args) => cohort::run(args)?,
        Command::Synth(args) => synth::run(args)?,
        Command::Train(args) => train::run(*args)?,
        Command::Evaluate(args) => train::evaluate(args)?,
        Command::Predict(args) => predict::predict(args)?,
        Command::Heatmap(args) => heatmap::run(*args)?,
        Command::ImportTorch(args) => predict::import(args)?,
        Command::Export(args) => export::run(args)?,
        Command::Bench(args) => bench::run(args)?,
        Command::Report(args) => report::run(args)?,
    })
}
