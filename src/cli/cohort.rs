//! `med-crossvit cohort gdc`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use med_crossvit::cohort::gdc::{self, GdcOptions, GeneId, GeneTypes, ValueColumn};

/// Options of `cohort`.
#[derive(Debug, Args)]
pub struct CohortArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, Subcommand)]
enum Source {
    /// A GDC portal download (sample sheet, STAR gene counts, clinical.tsv) and a folder of
    /// slide feature files into one cohort CSV, with a report of every case left out.
    Gdc(GdcArgs),
}

/// The expression value, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ValueArg {
    /// Transcripts per million.
    #[value(name = "tpm_unstranded")]
    Tpm,
    /// Raw counts.
    #[value(name = "unstranded")]
    Unstranded,
    /// FPKM.
    #[value(name = "fpkm_unstranded")]
    Fpkm,
    /// Upper-quartile FPKM.
    #[value(name = "fpkm_uq_unstranded")]
    FpkmUq,
}

/// Gene column names, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum GeneIdArg {
    /// Gene symbols (ids sharing a symbol summed).
    Symbol,
    /// Unversioned Ensembl ids.
    Ensembl,
}

/// Options of `cohort gdc`.
#[derive(Debug, Args)]
struct GdcArgs {
    /// The GDC sample sheet (gdc_sample_sheet.*.tsv).
    #[arg(long)]
    sample_sheet: PathBuf,
    /// The expression download folder ({File ID}/{File Name}).
    #[arg(long)]
    expression: PathBuf,
    /// The clinical export (clinical.tsv; old or new column names).
    #[arg(long)]
    clinical: PathBuf,
    /// The slide feature files ({slide barcode}.h5 or .pt; also h5_files/, pt_files/).
    #[arg(long)]
    features: PathBuf,
    /// The cohort CSV to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The expression value, written as read.
    #[arg(long, value_enum, default_value = "tpm_unstranded")]
    value: ValueArg,
    /// Gene types kept: `all`, or a comma list (protein_coding,lncRNA).
    #[arg(long, default_value = "protein_coding")]
    gene_types: String,
    /// Gene column names.
    #[arg(long, value_enum, default_value = "symbol")]
    gene_id: GeneIdArg,
    /// Sample types kept (GDC names, comma-separated); several tumour aliquots of a case are
    /// averaged.
    #[arg(long, default_value = "Primary Tumor")]
    sample_types: String,
    /// Keep frozen-section slides (TS, BS) too, not only diagnostic ones (DX).
    #[arg(long)]
    all_slides: bool,
    /// A table of one label per case (CSV or TSV) to join.
    #[arg(long, requires = "label_column")]
    labels: Option<PathBuf>,
    /// The label column of --labels.
    #[arg(long, requires = "labels")]
    label_column: Option<String>,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn run(args: CohortArgs) -> Result<ExitCode, gdc::GdcError> {
    let Source::Gdc(a) = args.source;
    let options = GdcOptions {
        value: match a.value {
            ValueArg::Tpm => ValueColumn::Tpm,
            ValueArg::Unstranded => ValueColumn::Unstranded,
            ValueArg::Fpkm => ValueColumn::Fpkm,
            ValueArg::FpkmUq => ValueColumn::FpkmUq,
        },
        gene_types: if a.gene_types.trim().eq_ignore_ascii_case("all") {
            GeneTypes::All
        } else {
            GeneTypes::Only(list(&a.gene_types))
        },
        gene_id: match a.gene_id {
            GeneIdArg::Symbol => GeneId::Symbol,
            GeneIdArg::Ensembl => GeneId::Ensembl,
        },
        sample_types: list(&a.sample_types),
        all_slides: a.all_slides,
        labels: a.labels.clone().zip(a.label_column.clone()),
        ..GdcOptions::new(&a.sample_sheet, &a.expression, &a.clinical, &a.features)
    };
    let cohort =
        med_crossvit::progress::observe(super::progress::steps(), || gdc::build(&options))?;
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| gdc::GdcError::Io {
            path: parent.to_path_buf(),
            source: e,
        })?;
    }
    cohort.write_csv(&a.out)?;
    if let Some(path) = &a.report {
        cohort.report.save(path)?;
    }
    println!("{}", cohort.report);
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
