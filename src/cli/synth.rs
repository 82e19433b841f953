//! `med-crossvit synth`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use med_crossvit::data::{SynthOptions, write_synthetic_cohort};

use super::args::TaskArg;

/// Options of `synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder: cohort.csv and features/.
    #[arg(long)]
    out: PathBuf,
    /// Number of slides.
    #[arg(long, default_value_t = 60)]
    slides: usize,
    /// Most tiles per slide (each slide has between half of it and all of it).
    #[arg(long, default_value_t = 120)]
    tiles: usize,
    /// Feature width.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Number of genes.
    #[arg(long, default_value_t = 32)]
    genes: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 2)]
    classes: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The task the cohort is for: survival adds the columns survival_months and
    /// censorship (1 = censored), with times that depend on the planted signal.
    #[arg(long, value_enum, default_value = "classification")]
    task: TaskArg,
    /// The same as --task survival.
    #[arg(long, conflicts_with = "task")]
    survival: bool,
    /// Store features chunked and gzip-compressed.
    #[arg(long)]
    compress: bool,
    /// Fraction of patients without expression, and another without tile files (train
    /// with --missing-modality allow).
    #[arg(long, default_value_t = 0.0)]
    missing: f64,
}

pub fn run(args: SynthArgs) -> Result<ExitCode, med_crossvit::Error> {
    let options = SynthOptions {
        slides: args.slides,
        tiles: args.tiles,
        dim: args.dim,
        genes: args.genes,
        classes: args.classes,
        seed: args.seed,
        survival: args.survival || matches!(args.task, TaskArg::Survival),
        compress: args.compress,
        missing: args.missing,
    };
    let cohort = write_synthetic_cohort(&args.out, &options)?;
    println!(
        "wrote {} slides: {} and {}",
        args.slides,
        cohort.csv.display(),
        cohort.features_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
