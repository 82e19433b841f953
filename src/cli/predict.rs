//! `med-crossvit predict` and `med-crossvit import-torch`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use med_crossvit::eval::Evaluation;
use med_crossvit::inference::{
    AttentionFiles, HeatmapOptions, SlideHeatmap, draw_heatmaps, predict_cohort,
    predict_with_attention, write_attention,
};
use med_crossvit::interop::import_torch_with;
use med_crossvit::run::{OutputKind, RunFileError, check_output};

use super::device;
use super::train::{ApplyArgs, report_skipped};

/// Options of `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    apply: ApplyArgs,
    /// The predictions CSV to write (one row per patient; with --per-slide also `X_slides.csv`
    /// beside it; for a fold ensemble also each fold's rows in `X_folds.csv`). Not inside a
    /// run or model folder, and not over a file other than a predictions CSV.
    #[arg(long)]
    out: PathBuf,
    /// Also write per-slide attention (tile and gene CSVs, heatmap PNGs) into this folder
    /// (absent, empty or holding only attention files; it may be a run's `attention/`).
    #[arg(long)]
    attention: Option<PathBuf>,
    /// With --attention and --slides: also draw each slide's heatmap over its whole-slide
    /// image into the attention folder (as `heatmap` does).
    #[command(flatten)]
    slides: super::heatmap::SlideArgs,
    /// Write although the outputs lie inside a run folder or would replace other files.
    #[arg(long)]
    force: bool,
}

pub fn predict(args: PredictArgs) -> Result<ExitCode, med_crossvit::Error> {
    let slides_out = slides_path(&args.out);
    check_output(&args.out, OutputKind::PredictionsFile, args.force)?;
    if args.apply.per_slide {
        check_output(&slides_out, OutputKind::PredictionsFile, args.force)?;
    }
    if let Some(dir) = &args.attention {
        check_output(dir, OutputKind::Attention, args.force)?;
    }
    let slide_options = args.slides.options()?;
    if med_crossvit::run::FoldEnsemble::is_cross_validation(&args.apply.model) {
        if args.attention.is_some() {
            return Err(super::ensemble::refuse_attention("--attention"));
        }
        if slide_options.is_some() {
            return Err(super::ensemble::refuse_attention("--slides"));
        }
        let precision = super::train::precision(&args.apply.precision, &args.apply.device)?;
        return super::ensemble::predict(
            &args.apply,
            &args.out,
            &slides_out,
            args.force,
            precision,
        );
    }
    if slide_options.is_some() && args.attention.is_none() {
        return Err(med_crossvit::run::RunError::BadOption {
            option: "--slides".into(),
            why: "heatmaps over the slides go into the --attention folder: give it too".into(),
        }
        .into());
    }
    let precision = super::train::precision(&args.apply.precision, &args.apply.device)?;
    let (device, bundle, request) = args.apply.load(false)?;
    let (evaluation, attention, drawn) = precision.scope(|| {
        med_crossvit::progress::observe(super::progress::steps(), || {
            predict_and_draw(&bundle, &request, &device, &args, slide_options.as_ref())
        })
    })?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(RunFileError::io(parent))?;
    }
    med_crossvit::eval::write_predictions(&args.out, &bundle, &evaluation)?;
    if args.apply.per_slide {
        med_crossvit::eval::write_slide_predictions(&slides_out, &bundle, &evaluation)?;
    }
    report_skipped(&evaluation);
    println!(
        "wrote {} ({} patients, {} slides){}",
        args.out.display(),
        evaluation.predictions.patients.len(),
        evaluation.predictions.slides.len(),
        if args.apply.per_slide {
            format!(" and {}", slides_out.display())
        } else {
            String::new()
        }
    );
    if let Some(dir) = &args.attention {
        let pictures = attention.iter().filter(|a| a.heatmap.is_ok()).count();
        println!(
            "wrote attention for {} slides into {} ({pictures} heatmaps)",
            attention.len(),
            dir.display()
        );
        for a in &attention {
            if let Err(why) = &a.heatmap {
                println!("  no heatmap for `{}`: {why}", a.slide);
            }
        }
        if slide_options.is_some() {
            super::heatmap::print_drawn(&drawn, dir);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Predicts the cohort, with the attention files and slide heatmaps asked for.
fn predict_and_draw(
    bundle: &med_crossvit::run::ModelBundle,
    request: &med_crossvit::eval::EvaluateRequest,
    device: &burn::tensor::Device,
    args: &PredictArgs,
    slides: Option<&HeatmapOptions>,
) -> Result<(Evaluation, Vec<AttentionFiles>, Vec<SlideHeatmap>), med_crossvit::Error> {
    let Some(dir) = args.attention.as_deref() else {
        let (evaluation, _) = predict_cohort(bundle, request, device, None)?;
        return Ok((evaluation, Vec::new(), Vec::new()));
    };
    let (evaluation, attention) = predict_with_attention(bundle, request, device)?;
    let drawn = match slides {
        // Slides first: their checks run before any file is written.
        Some(options) => draw_heatmaps(bundle, &evaluation, &attention, dir, options)?,
        None => Vec::new(),
    };
    let written = write_attention(bundle, &evaluation, &attention, dir)?;
    Ok((evaluation, written, drawn))
}

/// Where `--per-slide` writes: `X_slides.csv` beside `X.csv`.
fn slides_path(out: &std::path::Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "predictions".into());
    out.with_file_name(format!("{stem}_slides.csv"))
}

/// Options of `import-torch`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A state_dict saved by the Python original (torch.save(model.state_dict(), path)).
    #[arg(long)]
    checkpoint: PathBuf,
    /// JSON object of the keyword arguments that built it (the original's names).
    #[arg(long)]
    args: PathBuf,
    /// The model folder to write: absent or empty, and not inside a run or model folder.
    #[arg(long)]
    out: PathBuf,
    /// Expression normalization JSON (default: the identity).
    #[arg(long)]
    normalization: Option<PathBuf>,
    /// Write into --out whatever it holds (replacing a model folder's files).
    #[arg(long)]
    force: bool,
}

pub fn import(args: ImportArgs) -> Result<ExitCode, med_crossvit::interop::ImportError> {
    let device = device::parse("flex")?;
    let model = import_torch_with(
        &args.checkpoint,
        &args.args,
        args.normalization.as_deref(),
        &args.out,
        args.force,
        &device,
    )?;
    let c = model.config();
    println!(
        "imported {} parameters ({} fusion blocks, cross-attention {} head(s) as the checkpoint was trained) into {}",
        burn::module::Module::num_params(&model),
        c.depth,
        c.cross_attn_heads,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
