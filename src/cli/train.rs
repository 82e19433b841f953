//! `med-crossvit train` and `med-crossvit evaluate`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Args, ValueEnum};
use med_crossvit::RunError;
use med_crossvit::data::{BagSettings, NormalizeMethod, TileOptions, Unit};
use med_crossvit::eval::EvaluateRequest;
use med_crossvit::run::{
    DataSource, ModelBundle, ModelSpec, Select, Task, TokenizerSpec, TrainSettings,
};
use med_crossvit::runtime::{Precision, PrecisionError};
use med_crossvit::train::{self, TrainRequest, TrainSummary};

use super::args::{
    ColumnArgs, MissingArg, ModalitiesArg, NormalizeArg, SelectArg, TaskArg, UnitArg,
};
use super::device;
use super::progress::Progress;

/// The gene tokenizer, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenizerArg {
    /// The original's dense tokenizer.
    Dense,
    /// One learned vector pair per gene.
    #[value(name = "per_gene")]
    PerGene,
    /// One token per signature group (needs --signatures).
    Pathways,
}

/// The library's default settings: the defaults of the options below (one source of truth).
fn defaults() -> TrainSettings {
    TrainSettings::default()
}

/// Options of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The cohort CSV (with --resume: its new place, when it was moved since the run
    /// started).
    #[arg(long, required_unless_present = "resume")]
    csv: Option<PathBuf>,
    /// The features directory (with --resume: its new place, when it was moved; not needed
    /// with --modalities rna, which reads no tile file).
    #[arg(long)]
    features: Option<PathBuf>,
    /// The run folder to create: absent or empty (an existing run is continued with
    /// --resume).
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last complete epoch (from any working
    /// directory: the run records its data's absolute paths).
    #[arg(long, conflicts_with_all = ["out", "force"])]
    resume: Option<PathBuf>,
    /// Train into --out although it holds other files or lies inside a run folder (never
    /// over an existing run).
    #[arg(long)]
    force: bool,
    /// Model hyperparameters: a named preset (seed, small). New runs are position-free
    /// (`wsi_pos_embedding: false`: a bag is an unordered sample of tiles).
    #[arg(long, default_value = "small", conflicts_with = "config")]
    preset: String,
    /// Model hyperparameters from a JSON file (widths the data decides may be omitted; the run
    /// is position-free unless the file states `wsi_pos_embedding`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The task.
    #[arg(long, value_enum, default_value = "classification")]
    task: TaskArg,
    /// Gene tokenizer: dense (the original's), per_gene, or pathways (needs --signatures).
    #[arg(long, value_enum)]
    tokenizer: Option<TokenizerArg>,
    /// Signatures CSV for the pathways tokenizer: one column per group, gene names below.
    #[arg(long)]
    signatures: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = defaults().epochs)]
    epochs: usize,
    /// Bags per batch.
    #[arg(long, default_value_t = defaults().batch_size)]
    batch_size: usize,
    /// Tiles per bag.
    #[arg(long, default_value_t = defaults().bags.bag_size)]
    bag_size: usize,
    /// Most tiles sampled per bag source and epoch: per patient (from the union of its
    /// slides) with --unit patient, per slide with --unit slide.
    #[arg(long, default_value_t = defaults().bags.max_patches_total)]
    max_patches_total: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = defaults().lr)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = defaults().weight_decay)]
    weight_decay: f64,
    /// Warm-up epochs.
    #[arg(long, default_value_t = defaults().warmup_epochs)]
    warmup_epochs: f64,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = defaults().grad_accumulation)]
    grad_accumulation: usize,
    /// Epochs without a better validation metric before stopping (0: never). The metric is
    /// val_auc for classification and val_c_index for survival (val_loss where undefined);
    /// it also chooses the best epoch.
    #[arg(long, default_value_t = defaults().patience)]
    patience: usize,
    /// Patient-level stratified cross-validation folds.
    #[arg(long)]
    folds: Option<usize>,
    /// Fraction of patients for validation.
    #[arg(long, default_value_t = defaults().val_fraction)]
    val_fraction: f64,
    /// Fraction of patients held out for testing.
    #[arg(long, default_value_t = defaults().test_fraction)]
    test_fraction: f64,
    /// A splits CSV with train, val and test columns (slide or patient ids).
    #[arg(long, conflicts_with = "folds")]
    splits: Option<PathBuf>,
    /// A folder of published splits (splits_0.csv … splits_K.csv): one fold per file, into
    /// fold_K/, with cv.json.
    #[arg(long, conflicts_with_all = ["folds", "splits"])]
    splits_dir: Option<PathBuf>,
    /// What bags are drawn from: each patient's slides pooled, or each slide (its predictions
    /// then averaged per patient). Metrics are per patient either way.
    #[arg(long, value_enum, default_value = "patient")]
    unit: UnitArg,
    /// Expression scaling, fitted on the training patients: log2-zscore (counts, TPM, FPKM),
    /// zscore (log-scale values, such as MCAT's tables, which are not all z-scores), minmax
    /// (to [-1, 1], as SurvPath), none (values already z-scored). The range after it is
    /// printed, with a warning naming the genes beyond ±10.
    #[arg(long, value_enum, conflicts_with = "no_log")]
    normalize: Option<NormalizeArg>,
    /// Keep the K genes of largest median absolute deviation on each fold's training
    /// patients (MCAT keeps 2000).
    #[arg(long, value_name = "K")]
    top_genes: Option<usize>,
    /// Clip normalized expression to [-C, C] (saved with the normalization: evaluate and
    /// predict clip the same). Default: no clipping.
    #[arg(long, value_name = "C")]
    clip: Option<f64>,
    /// Rows without expression (every gene cell empty) or without a tile file: an error
    /// listing them all, or allowed (a patient is predicted from what it has).
    #[arg(long, value_enum, default_value = "error")]
    missing_modality: MissingArg,
    /// Probability that a complete training sample loses one modality for a step (each
    /// with half of it, never both).
    #[arg(long, default_value_t = defaults().modality_dropout)]
    modality_dropout: f64,
    /// The modalities used: both, or one alone (a unimodal baseline on the same splits). rna
    /// reads no tile file (no --features needed; rows may lack a slide id when they have a
    /// patient id) and gives the unused WSI branch width 1 unless --config sets wsi_dim; wsi
    /// reads no gene column.
    #[arg(long, value_enum, default_value = "both")]
    modalities: ModalitiesArg,
    /// Bootstrap resamples for the intervals of the final metrics (0: none).
    #[arg(long, default_value_t = defaults().bootstrap)]
    bootstrap: usize,
    /// Risk groups of the log-rank test: 2 (median split) or 3 (tertiles).
    #[arg(long, default_value_t = defaults().risk_groups)]
    risk_groups: usize,
    /// Random seed.
    #[arg(long, default_value_t = defaults().seed)]
    seed: u64,
    /// Weight classes by inverse frequency.
    #[arg(long)]
    class_weights: bool,
    /// Expression is already on a log scale: skip log2(x + 1) (the same as --normalize zscore).
    #[arg(long)]
    no_log: bool,
    /// Survival time column.
    #[arg(long, default_value_t = defaults().survival.time_column)]
    time_column: String,
    /// Censorship column (1 = censored).
    #[arg(long, default_value_t = defaults().survival.censorship_column)]
    censorship_column: String,
    /// Survival time bins.
    #[arg(long, default_value_t = defaults().survival.bins)]
    bins: usize,
    /// Weight of the uncensored term in the survival loss.
    #[arg(long, default_value_t = defaults().survival.alpha)]
    alpha: f64,
    /// Loader threads.
    #[arg(long, default_value_t = defaults().workers)]
    workers: usize,
    /// Recompute each layer in the backward pass and update its weights at once: about half
    /// the memory, one more forward pass per step.
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Device: flex, ndarray, wgpu or cuda[:I] (those compiled in).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Devices of this process: each batch is shared out over them and their gradients are
    /// summed into one step (CUDA: cuda:I … I+N−1, summed by NCCL). docs/distributed.md
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Spread training over the processes of an MPI job (`mpirun -n R med-crossvit train …
    /// --distributed mpi`); each process reads its share of every batch, rank 0 writes the
    /// run. Needs a build with the `mpi` feature.
    #[arg(long, value_enum, default_value = "none")]
    distributed: Distributed,
    /// Name of the features dataset.
    #[arg(long)]
    features_key: Option<String>,
    /// Leave out slides whose tile file is missing (reported) instead of failing.
    #[arg(long)]
    skip_missing: bool,
    /// Which epoch's weights the run keeps (model.bpk) and reports: best (the epoch of best
    /// val_auc / val_c_index, chosen on the validation patients it is then reported on:
    /// optimistic without a test split) or last (the last epoch trained: the published
    /// convention of cross-validation without a test split). cv.json reports both means.
    #[arg(long, value_enum, default_value = "best")]
    select: SelectArg,
    /// Also write the TensorBoard event files of the training curves into this folder
    /// (`DIR/fold_K` per fold), besides the run's own `tensorboard/` (always written). Saved
    /// in config.json: a resumed run goes on writing there. docs/tensorboard.md
    #[arg(long, conflicts_with = "resume")]
    tensorboard: Option<PathBuf>,
    /// Stop after this many epochs, as if interrupted (continue with --resume).
    #[arg(long, hide = true)]
    stop_after_epoch: Option<usize>,
    #[command(flatten)]
    columns: ColumnArgs,
}

fn settings(a: &TrainArgs) -> TrainSettings {
    let normalize = a.normalize.map(NormalizeArg::method);
    TrainSettings {
        task: match a.task {
            TaskArg::Classification => Task::Classification,
            TaskArg::Survival => Task::Survival,
        },
        survival: med_crossvit::run::SurvivalSettings {
            time_column: a.time_column.clone(),
            censorship_column: a.censorship_column.clone(),
            bins: a.bins,
            alpha: a.alpha,
        },
        epochs: a.epochs,
        batch_size: a.batch_size,
        bags: BagSettings {
            bag_size: a.bag_size,
            max_patches_total: a.max_patches_total,
        },
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_epochs: a.warmup_epochs,
        grad_accumulation: a.grad_accumulation,
        patience: a.patience,
        seed: a.seed,
        val_fraction: a.val_fraction,
        test_fraction: a.test_fraction,
        splits_csv: a.splits.clone(),
        splits_dir: a.splits_dir.clone(),
        unit: match a.unit {
            UnitArg::Patient => Unit::Patient,
            UnitArg::Slide => Unit::Slide,
        },
        normalize,
        top_genes: a.top_genes,
        clip: a.clip,
        missing_modality: a.missing_modality.value(),
        bootstrap: a.bootstrap,
        risk_groups: a.risk_groups,
        modality_dropout: a.modality_dropout,
        modalities: a.modalities.value(),
        class_weights: a.class_weights,
        log2_expression: match normalize {
            Some(n) => n == NormalizeMethod::Log2Zscore,
            None => !a.no_log,
        },
        workers: a.workers,
        gradient_checkpointing: a.gradient_checkpointing,
        select: a.select.value(),
        tensorboard: a.tensorboard.clone(),
    }
}

fn tokenizer(args: &TrainArgs) -> Result<Option<TokenizerSpec>, med_crossvit::Error> {
    let missing = || med_crossvit::DataError::Setting {
        setting: "signatures",
        message: "--tokenizer pathways needs --signatures FILE".into(),
    };
    Ok(match (args.tokenizer, &args.signatures) {
        (None, None) => None,
        (Some(TokenizerArg::Dense), _) => Some(TokenizerSpec::Dense),
        (Some(TokenizerArg::PerGene), _) => Some(TokenizerSpec::PerGene),
        (Some(TokenizerArg::Pathways) | None, Some(path)) => {
            Some(TokenizerSpec::Pathways(path.clone()))
        }
        (Some(TokenizerArg::Pathways), None) => return Err(missing().into()),
    })
}

/// How training spreads over processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Distributed {
    /// One process.
    None,
    /// The processes of an MPI job.
    Mpi,
}

pub fn run(args: TrainArgs) -> Result<ExitCode, med_crossvit::Error> {
    match args.distributed {
        Distributed::None => run_in(args, &train::Alone),
        Distributed::Mpi => run_mpi(args),
    }
}

#[cfg(feature = "mpi")]
fn run_mpi(args: TrainArgs) -> Result<ExitCode, med_crossvit::Error> {
    use train::ProcessGroup;
    let group = train::mpi::MpiGroup::init()?;
    let (rank, size) = (group.rank(), group.size());
    // A panic on one rank must not leave the others waiting in a collective.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprintln!("rank {rank} of {size} panicked: ending the MPI job");
        use mpi::traits::Communicator;
        mpi::topology::SimpleCommunicator::world().abort(101);
    }));
    match run_in(args, &group) {
        Ok(code) => Ok(code),
        Err(e) => {
            // The error names the rank that met it; MPI_Abort ends the others, which may be
            // waiting for this one in a collective.
            // One write: the ranks share the job's stderr, and a line written in pieces
            // interleaves with the other ranks' lines.
            let line = format!("error: rank {rank} of {size}: {e}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            group.abort(1)
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn run_mpi(_args: TrainArgs) -> Result<ExitCode, med_crossvit::Error> {
    Err(med_crossvit::RunError::Distributed {
        message:
            "this build has no MPI support; rebuild with `--features mpi` (docs/distributed.md)"
                .into(),
    }
    .into())
}

fn run_in(
    args: TrainArgs,
    group: &dyn train::ProcessGroup,
) -> Result<ExitCode, med_crossvit::Error> {
    let (devices, nccl) = device::parse_many(&args.device, args.devices)?;
    let parallel = train::Parallel {
        devices,
        group,
        nccl,
    };
    let writer = group.is_writer();
    let mut progress = Progress::new();
    let start = std::time::Instant::now();
    let summary = match &args.resume {
        Some(dir) => {
            let relocation = train::Relocation {
                csv: args.csv.clone(),
                features_dir: args.features.clone(),
            };
            train::resume_relocated(
                dir,
                &relocation,
                args.stop_after_epoch,
                &parallel,
                &mut |e| progress.on(e),
            )?
        }
        None => {
            let request = TrainRequest {
                data: DataSource {
                    csv: args.csv.clone().expect("clap requires --csv"),
                    // None: a run on expression alone (the library says so otherwise).
                    features_dir: args.features.clone().unwrap_or_default(),
                    features_key: args.features_key.clone(),
                    skip_missing: args.skip_missing,
                },
                columns: args.columns.columns(),
                model: match &args.config {
                    Some(path) => ModelSpec::File(path.clone()),
                    None => ModelSpec::Preset(args.preset.clone()),
                },
                tokenizer: tokenizer(&args)?,
                settings: settings(&args),
                folds: args.folds,
                out: args.out.clone().expect("clap requires --out"),
                stop_after: args.stop_after_epoch,
                force: args.force,
            };
            train::train_parallel(&request, &parallel, &mut |e| progress.on(e))?
        }
    };
    if !writer {
        return Ok(ExitCode::SUCCESS);
    }
    print_summary(&summary);
    eprintln!("wall time {:.1} s", start.elapsed().as_secs_f64());
    if !summary.finished {
        eprintln!("stopped before the last epoch; continue with --resume");
    } else if let Some(dir) = args.resume.as_ref().or(args.out.as_ref()) {
        // The run's results are all saved by now: a report that cannot be written is a
        // warning, and `report` can write it again.
        match med_crossvit::report::write_report_checked(dir) {
            Ok(written) => {
                println!("report: {}", written.path.display());
                for why in &written.problems {
                    eprintln!("warning: the report could not read {why}");
                }
            }
            Err(e) => eprintln!(
                "warning: report.html not written: {e} (retry with `med-crossvit report {}`)",
                dir.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(summary: &TrainSummary) {
    let names: Vec<&String> = summary.mean.keys().collect();
    let metric = &summary.selection_metric;
    let kept = summary.checkpoint.kept(metric);
    match summary.checkpoint {
        Select::Best => println!("checkpoint: {kept} (--select best)"),
        Select::Last => {
            println!("checkpoint: {kept} (--select last; best_epoch is the best on {metric})")
        }
    }
    let mut header = format!("{:<8} {:>10} {:>10}", "fold", "epoch", "best_epoch");
    for n in &names {
        header.push_str(&format!(" {n:>18}"));
    }
    println!("{header}");
    for f in &summary.folds {
        let mut line = format!("{:<8} {:>10} {:>10}", f.fold, f.epoch, f.best_epoch);
        for n in &names {
            let v = f.metrics.scalar(n);
            line.push_str(&format!(
                " {:>18}",
                v.map_or("-".into(), |v| format!("{v:.4}"))
            ));
        }
        println!("{line}");
    }
    if summary.folds.len() > 1 {
        let mut line = format!("{:<8} {:>10} {:>10}", "mean±std", "", "");
        for n in &names {
            line.push_str(&format!(
                " {:>18}",
                format!("{:.4} ± {:.4}", summary.mean[*n], summary.std[*n])
            ));
        }
        println!("{line}");
        let name = metric.strip_prefix("val_").unwrap_or(metric);
        let mean = |s: &train::Spread| {
            s.mean
                .get(name)
                .zip(s.std.get(name))
                .map_or("-".into(), |(m, d)| format!("{m:.4} ± {d:.4}"))
        };
        println!(
            "{metric} over the folds: best epochs {} (chosen on these patients), last epochs {}",
            mean(&summary.best),
            mean(&summary.last)
        );
    }
    if let Some(f) = summary.folds.first() {
        println!(
            "results in {}",
            f.out
                .parent()
                .filter(|_| summary.folds.len() > 1)
                .unwrap_or(&f.out)
                .display()
        );
    }
}

/// A trained model and a cohort to apply it to: shared by `evaluate` and `predict`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A run or model folder (from `train` or `import-torch`), or a cross-validation run
    /// folder: then every fold_K model is applied and their predictions combined (see
    /// --ensemble; docs/ensembles.md).
    #[arg(long)]
    pub model: PathBuf,
    /// How a cross-validation run's folds are combined: mean (of the class probabilities;
    /// for survival of the per-bin hazards) or vote (majority of the folds' classes, ties to
    /// the higher mean probability; classification only). Default mean.
    #[arg(long)]
    pub ensemble: Option<String>,
    /// The cohort CSV.
    #[arg(long)]
    pub csv: PathBuf,
    /// The features directory (not needed for a model trained with --modalities rna).
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Name of the features dataset.
    #[arg(long)]
    pub features_key: Option<String>,
    /// Leave out slides whose tile file is missing (reported) instead of failing.
    #[arg(long)]
    pub skip_missing: bool,
    /// Device.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Also write one row per slide (predictions_slides.csv) besides the one per patient.
    #[arg(long)]
    pub per_slide: bool,
    /// Precision of the model's matrix products on flex: f32, bf16 (CPUs with AVX512_BF16;
    /// refused elsewhere) or bf16-emulated (bf16's results on any CPU, no faster than f32).
    /// See docs/precision.md.
    #[arg(long, default_value = "f32")]
    pub precision: String,
}

impl ApplyArgs {
    /// The device, the model folder loaded onto it, and the cohort request.
    pub fn load(
        &self,
        require_targets: bool,
    ) -> Result<(Device, ModelBundle, EvaluateRequest), med_crossvit::Error> {
        let device = device::parse(&self.device)?;
        if self.ensemble.is_some() {
            return Err(RunError::BadOption {
                option: "--ensemble".into(),
                why: format!(
                    "{} is a single model, not a cross-validation run with fold_K models",
                    self.model.display()
                ),
            }
            .into());
        }
        let bundle = ModelBundle::load(&self.model, &device)?;
        Ok((device, bundle, self.request(require_targets)))
    }

    /// The cohort request of `--csv` and the tile options.
    pub fn request(&self, require_targets: bool) -> EvaluateRequest {
        EvaluateRequest {
            csv: self.csv.clone(),
            tiles: TileOptions {
                features_key: self.features_key.clone(),
                skip_missing: self.skip_missing,
                ..TileOptions::new(self.features.clone().unwrap_or_default())
            },
            require_targets,
        }
    }
}

/// The precision of `--precision` for `--device`: refused when unknown, when bf16 is asked of
/// a CPU without AVX512_BF16 (naming the missing flags), and for bf16 on devices other than
/// flex (whose products it does not reach).
pub fn precision(name: &str, device: &str) -> Result<Precision, med_crossvit::Error> {
    let bad = |why: String| RunError::BadOption {
        option: "--precision".into(),
        why,
    };
    let precision: Precision = name
        .parse()
        .map_err(|e: PrecisionError| bad(e.to_string()))?;
    let precision = precision.check().map_err(|e| bad(e.to_string()))?;
    if precision.is_bf16() && device != "flex" {
        return Err(bad(format!(
            "{precision} products run on the flex device only, not on `{device}`"
        ))
        .into());
    }
    Ok(precision)
}

/// Reports slides left out for missing files.
pub fn report_skipped(evaluation: &med_crossvit::eval::Evaluation) {
    if !evaluation.cohort.skipped().is_empty() {
        eprintln!(
            "skipped {} slide(s) whose tile file is missing",
            evaluation.cohort.skipped().len()
        );
    }
}

/// Options of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    apply: ApplyArgs,
    /// Output folder for metrics.json and predictions.csv (for a fold ensemble also
    /// predictions_folds.csv and metrics_folds.json): absent, empty or an earlier
    /// evaluation's; not a run or model folder, nor inside one.
    #[arg(long)]
    out: PathBuf,
    /// Write into --out whatever it holds.
    #[arg(long)]
    force: bool,
}

pub fn evaluate(args: EvaluateArgs) -> Result<ExitCode, med_crossvit::Error> {
    med_crossvit::run::check_output(
        &args.out,
        med_crossvit::run::OutputKind::Evaluation,
        args.force,
    )?;
    let precision = precision(&args.apply.precision, &args.apply.device)?;
    if med_crossvit::run::FoldEnsemble::is_cross_validation(&args.apply.model) {
        return super::ensemble::evaluate(&args.apply, &args.out, precision);
    }
    let (device, bundle, request) = args.apply.load(true)?;
    let evaluation = precision.scope(|| {
        med_crossvit::progress::observe(super::progress::steps(), || {
            med_crossvit::eval::evaluate(&bundle, &request, &device, false, None)
        })
    })?;
    let metrics = med_crossvit::eval::write_evaluation(
        &args.out,
        &bundle,
        &evaluation,
        args.apply.per_slide,
    )?;
    report_skipped(&evaluation);
    for (k, v) in metrics.scalars() {
        println!("{k:<18} {}", v.map_or("-".into(), |v| format!("{v:.4}")));
    }
    println!(
        "{} patient(s), {} slide(s); wrote {} and {}",
        evaluation.predictions.patients.len(),
        evaluation.predictions.slides.len(),
        args.out
            .join(med_crossvit::run::files::METRICS_JSON)
            .display(),
        args.out
            .join(med_crossvit::run::files::PREDICTIONS_CSV)
            .display()
    );
    Ok(ExitCode::SUCCESS)
}
