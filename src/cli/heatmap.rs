//! `med-crossvit heatmap`, and the slide options `predict --attention DIR --slides …` shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use med_crossvit::inference::overlay::{Normalize, PlacementOverrides, Style};
use med_crossvit::inference::{HeatmapOptions, SlideHeatmap, heatmaps};
use med_crossvit::run::{OutputKind, RunError, check_output};
use med_crossvit::slide::{READER_BUILT, SlideError, ThumbnailSize};

use super::train::{ApplyArgs, report_skipped};

/// How to draw heatmaps over the whole-slide images.
#[derive(Debug, Args)]
pub struct SlideArgs {
    /// The folder of whole-slide images (.svs, .ndpi, .tif/.tiff, .mrxs, .scn), each named by
    /// its slide id as the feature files are; searched one folder down too (GDC downloads).
    #[arg(long, value_name = "SLIDE_DIR")]
    pub slides: Option<PathBuf>,
    /// The overlay's long side in pixels (read from the smallest pyramid level at least that
    /// fine).
    #[arg(long, default_value_t = 2048, conflicts_with = "level")]
    max_size: u32,
    /// Draw over this pyramid level as it is, instead of --max-size.
    #[arg(long)]
    level: Option<usize>,
    /// Weight of the colours over the slide, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Colour scale: rank (each slide uses every colour, ties share), percentile (linear between
    /// the slide's 1st and 99th percentile) or raw (linear between its lowest and highest score).
    #[arg(long, default_value = "rank", value_parser = ["rank", "percentile", "raw"])]
    normalize: String,
    /// Gaussian blur of the scores, sigma in overlay pixels (0: sharp tiles).
    #[arg(long, default_value_t = 0.0)]
    blur: f64,
    /// Cut this many most and least attended tiles from the slide at full resolution (0: none).
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Tile side in level-0 pixels, whatever the feature files declare.
    #[arg(long)]
    patch_size: Option<f64>,
    /// Micrometres per level-0 pixel, whatever the slides declare (for coordinates in
    /// micrometres, as STAMP writes).
    #[arg(long)]
    mpp: Option<f64>,
}

impl SlideArgs {
    /// The options, or `None` without `--slides`.
    ///
    /// # Errors
    ///
    /// A build without the `openslide` feature; a value out of range.
    pub fn options(&self) -> Result<Option<HeatmapOptions>, med_crossvit::Error> {
        let Some(slides) = &self.slides else {
            return Ok(None);
        };
        if !READER_BUILT {
            return Err(SlideError::NotBuilt {
                path: slides.clone(),
            }
            .into());
        }
        let bad = |option: &str, value: f64| {
            med_crossvit::Error::from(RunError::BadOption {
                option: option.into(),
                why: format!(
                    "must be {}, got {value}",
                    match option {
                        "--alpha" => "between 0 and 1",
                        "--blur" => "0 or more",
                        _ => "a positive number",
                    }
                ),
            })
        };
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(bad("--alpha", self.alpha));
        }
        for (name, v) in [("--patch-size", self.patch_size), ("--mpp", self.mpp)] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(bad(name, v));
            }
        }
        if !(self.blur.is_finite() && self.blur >= 0.0) {
            return Err(bad("--blur", self.blur));
        }
        let normalize: Normalize = self.normalize.parse().unwrap_or_default();
        Ok(Some(HeatmapOptions {
            slides: slides.clone(),
            size: match self.level {
                Some(level) => ThumbnailSize::Level(level),
                None => ThumbnailSize::LongSide(self.max_size),
            },
            style: Style {
                alpha: self.alpha,
                normalize,
                blur: self.blur,
            },
            top_k: self.top_k,
            overrides: PlacementOverrides {
                patch_size: self.patch_size,
                mpp: self.mpp,
            },
        }))
    }
}

/// Options of `heatmap`.
#[derive(Debug, Args)]
pub struct HeatmapArgs {
    #[command(flatten)]
    apply: ApplyArgs,
    #[command(flatten)]
    slides: SlideArgs,
    /// The folder to write: `{slide}.png` overlays, `{slide}.geojson` (QuPath), `topk/` crops
    /// and their CSVs, and the manifest `heatmaps.csv`. Absent, empty or an earlier heatmap
    /// folder; it may be a run's `heatmaps/`, which `report` shows.
    #[arg(long)]
    out: PathBuf,
    /// Write although the folder holds other files.
    #[arg(long)]
    force: bool,
}

/// Runs `heatmap`.
pub fn run(args: HeatmapArgs) -> Result<ExitCode, med_crossvit::Error> {
    let Some(options) = args.slides.options()? else {
        return Err(RunError::BadOption {
            option: "--slides".into(),
            why: "heatmap draws over the whole-slide images: give their folder".into(),
        }
        .into());
    };
    check_output(&args.out, OutputKind::Heatmaps, args.force)?;
    let (device, bundle, request) = args.apply.load(false)?;
    let (evaluation, drawn) = med_crossvit::progress::observe(super::progress::steps(), || {
        heatmaps(&bundle, &request, &device, &args.out, &options)
    })?;
    report_skipped(&evaluation);
    print_drawn(&drawn, &args.out);
    Ok(ExitCode::SUCCESS)
}

/// One line per slide drawn, then where the manifest is.
pub fn print_drawn(drawn: &[SlideHeatmap], out: &Path) {
    for d in drawn {
        println!(
            "{}: {} ({}; {}) in {:.2} s",
            d.slide,
            d.overlay.display(),
            d.caption,
            d.placement,
            d.seconds
        );
    }
    println!(
        "wrote heatmaps of {} slide(s) into {} (list: {})",
        drawn.len(),
        out.display(),
        out.join(med_crossvit::run::HEATMAPS_CSV).display()
    );
}
