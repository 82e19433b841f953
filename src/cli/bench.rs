//! `med-crossvit bench`.

use std::process::ExitCode;

use clap::Args;
use med_crossvit::RunError;
use med_crossvit::bench::{self, BenchOptions, BenchReport};
use med_crossvit::model::{AttentionKind, GeneGroup, MedCrossViTConfig, RnaTokenizer};
use med_crossvit::run::{ModelSpec, check_model, resolve_model};

use super::device;

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model preset: seed (the original's published arguments) or small.
    #[arg(long, default_value = "seed")]
    preset: String,
    /// Bags per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Genes (default: the preset's 100).
    #[arg(long)]
    genes: Option<usize>,
    /// Gene tokenizer: dense, per_gene, or pathways (groups of 50 consecutive genes).
    #[arg(long, default_value = "dense")]
    tokenizer: String,
    /// RNA attention: exact, or nystrom:LANDMARKS (e.g. nystrom:256).
    #[arg(long, default_value = "exact")]
    rna_attention: String,
    /// Also time training steps (forward + backward + AdamW update).
    #[arg(long)]
    train: bool,
    /// With --train: recompute each layer in the backward pass and update its weights at once
    /// (as `train --gradient-checkpointing`).
    #[arg(long)]
    checkpointing: bool,
    /// Device: flex, ndarray or wgpu (those compiled in).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Also time a 2048 × 2048 matrix product on the device (the machine's reference rate).
    #[arg(long)]
    matmul: bool,
    /// Precision of the model's matrix products on flex: f32, bf16 (CPUs with AVX512_BF16)
    /// or bf16-emulated (docs/precision.md). With --matmul, the 2048² product through the
    /// model's product kernel at this precision is timed too.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The bags' feature width and tile count that `bench` times.
const WSI_DIM: usize = 768;
/// Tiles per bag.
const TILES: usize = 50;

/// Times the model as `args` say, and prints the timings as text or one JSON object.
pub fn run(args: BenchArgs) -> Result<ExitCode, med_crossvit::Error> {
    let precision = super::train::precision(&args.precision, &args.device)?;
    let device = device::parse(&args.device)?;
    let config = model_config(&args)?;
    let options = BenchOptions {
        config,
        batch: args.batch,
        iters: args.iters,
        train: args.train,
        checkpointing: args.checkpointing,
    };
    let report = precision.scope(|| bench::run(&options, &device))?;
    let matmul = args
        .matmul
        .then(|| bench::matmul_gflops(2048, args.iters, &device));
    let product = (args.matmul && args.device == "flex")
        .then(|| bench::product_gflops(2048, args.iters, precision));
    if args.json {
        let mut value = serde_json::to_value(&report).expect("a report serializes");
        if let Some(m) = matmul {
            value["matmul_2048_gflops"] = m.into();
        }
        if let Some(p) = product {
            value["product_2048_gflops"] = p.into();
        }
        value["precision"] = precision.to_string().into();
        println!("{value}");
    } else {
        print_report(&args, &report, matmul);
        if let Some(p) = product {
            println!("2048² product   {p:.1} GFLOP/s (model kernel, {precision})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The genes `bench` times: `--genes`, or the presets' 100.
fn genes(args: &BenchArgs) -> usize {
    args.genes.unwrap_or(100)
}

/// The model of `--preset` for two classes, with the gene tokenizer of `--tokenizer`.
fn model_config(args: &BenchArgs) -> Result<MedCrossViTConfig, med_crossvit::Error> {
    let genes = genes(args);
    let mut config = resolve_model(
        &ModelSpec::Preset(args.preset.clone()),
        WSI_DIM,
        genes,
        2,
        TILES,
    )?;
    config.rna_tokenizer = match args.tokenizer.as_str() {
        "dense" => RnaTokenizer::Dense,
        "per_gene" => RnaTokenizer::PerGene,
        "pathways" => RnaTokenizer::Pathways {
            groups: (0..genes.div_ceil(50))
                .map(|k| GeneGroup {
                    name: format!("group_{k}"),
                    genes: (k * 50..((k + 1) * 50).min(genes)).collect(),
                })
                .collect(),
        },
        other => {
            return Err(RunError::Unknown {
                what: "tokenizer",
                name: other.into(),
                choices: "dense, per_gene, pathways".into(),
            }
            .into());
        }
    };
    config.rna_attention = rna_attention(&args.rna_attention)?;
    check_model(&config, TILES)?;
    Ok(config)
}

/// The RNA attention of `--rna-attention`: `exact` or `nystrom:LANDMARKS`.
fn rna_attention(arg: &str) -> Result<AttentionKind, med_crossvit::Error> {
    let landmarks = arg.strip_prefix("nystrom:").map(str::parse::<usize>);
    match (arg, landmarks) {
        ("exact", _) => Ok(AttentionKind::Exact),
        (_, Some(Ok(m))) if m > 0 => Ok(AttentionKind::nystrom(m)),
        _ => Err(RunError::Unknown {
            what: "RNA attention",
            name: arg.into(),
            choices: "exact, nystrom:LANDMARKS (a positive count)".into(),
        }
        .into()),
    }
}

/// The timings as text, one line each.
fn print_report(args: &BenchArgs, report: &BenchReport, matmul: Option<f64>) {
    println!(
        "model: preset {}, {} genes ({} tokenizer, {} attention), batch {} × {} tiles × {}, \
         device {}, precision {}",
        args.preset,
        genes(args),
        args.tokenizer,
        args.rna_attention,
        args.batch,
        TILES,
        WSI_DIM,
        args.device,
        args.precision
    );
    println!("parameters      {}", report.params);
    println!(
        "forward         median {:.1} ms, min {:.1} ms; CPU time {:.1} ms (median, all threads)",
        report.forward_ms, report.forward_min_ms, report.forward_cpu_ms
    );
    if let (Some(m), Some(min)) = (report.train_step_ms, report.train_step_min_ms) {
        println!("training step   median {m:.1} ms, min {min:.1} ms");
    }
    if let Some(p) = &report.train_phases {
        println!(
            "  of which       forward {:.1} ms, backward {:.1} ms, AdamW update {:.1} ms (medians)",
            p.forward_ms, p.backward_ms, p.update_ms
        );
    }
    println!(
        "forward FLOPs   {:.1} GFLOP, {:.1} GFLOP/s",
        report.flops / 1e9,
        report.gflops
    );
    if let Some(m) = matmul {
        println!("2048² matmul    {m:.1} GFLOP/s");
    }
    println!("peak RSS        {:.0} MB", report.peak_rss_mb);
}
