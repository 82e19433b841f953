//! Heatmaps over the whole-slide image: each slide's tile attention blended over a thumbnail
//! of the slide itself, the most and least attended tiles cut from the slide at full
//! resolution, and the tiles as GeoJSON for QuPath. See docs/heatmaps.md.
//!
//! Everything the user gave is checked before a file is written (every slide found and
//! opened, every tile file's coordinates and tile size understood and on its slide), so a bad
//! slide or file leaves the output folder as it was; each file is then written whole
//! (through a temporary file), the manifest `heatmaps.csv` last.

mod geojson;
mod placement;
mod render;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use geojson::{TileFeature, collection};
pub use placement::{Placement, PlacementOverrides, SlideScale, place};
pub use render::{FOOTER, Normalize, Style, blend, colour_at, normalize, score_layer, with_footer};

use super::SlideAttention;
use crate::data::{read_tile_geometry, slide_stem};
use crate::eval::Evaluation;
use crate::run::{
    Error, HEATMAPS_CSV, HEATMAPS_HEADER, ModelBundle, RunFileError, TOP_TILES_HEADER, TOPK_DIR,
    Task,
};
use crate::slide::{Slide, SlideError, SlideIndex, ThumbnailSize};

/// What to draw and how.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapOptions {
    /// The folder of whole-slide images (searched one folder down too).
    pub slides: PathBuf,
    /// The thumbnail's size.
    pub size: ThumbnailSize,
    /// Colours, normalization, blur.
    pub style: Style,
    /// How many most and least attended tiles to cut out (0: none).
    pub top_k: usize,
    /// `--patch-size`, `--mpp`.
    pub overrides: PlacementOverrides,
}

/// What was written for one slide.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideHeatmap {
    /// The slide id.
    pub slide: String,
    /// The whole-slide image read.
    pub image: PathBuf,
    /// The overlay PNG.
    pub overlay: PathBuf,
    /// The tiles as GeoJSON.
    pub geojson: PathBuf,
    /// The top tiles' CSV (with `top_k` > 0).
    pub top_tiles: Option<PathBuf>,
    /// The caption under the overlay (the prediction).
    pub caption: String,
    /// How the tiles were placed (unit, tile size and where it came from).
    pub placement: String,
    /// Seconds spent reading the slide and writing its files.
    pub seconds: f64,
}

/// A slide checked and ready to draw.
struct Plan {
    slide: String,
    stem: String,
    image: PathBuf,
    rows: Vec<usize>,
    scores: Vec<f64>,
    placement: Placement,
    caption: String,
}

/// Draws the heatmaps of every slide in `attention` (as collected while predicting
/// `evaluation`) into `out`, and writes the manifest `out/heatmaps.csv`. Returns the slides
/// drawn and, for slides without tiles, why they have no heatmap.
///
/// # Errors
///
/// [`SlideError`]s naming the slide at fault (no image, an image OpenSlide cannot read, tiles
/// without coordinates or size, tiles off the slide), before anything is written; then
/// write errors naming the file.
pub fn draw_heatmaps(
    bundle: &ModelBundle,
    evaluation: &Evaluation,
    attention: &BTreeMap<usize, SlideAttention>,
    out: &Path,
    options: &HeatmapOptions,
) -> Result<Vec<SlideHeatmap>, Error> {
    let index = SlideIndex::scan(&options.slides)?;
    let mut plans = Vec::with_capacity(attention.len());
    for (&i, slide_attention) in attention {
        plans.push(plan(
            bundle,
            evaluation,
            i,
            slide_attention,
            &index,
            options,
        )?);
    }
    let topk = out.join(TOPK_DIR);
    let dir = if options.top_k > 0 { &topk } else { out };
    std::fs::create_dir_all(dir).map_err(RunFileError::io(dir))?;
    let mut drawn = Vec::with_capacity(plans.len());
    for plan in &plans {
        drawn.push(draw(plan, out, options)?);
    }
    write_manifest(out, &drawn)?;
    Ok(drawn)
}

/// Finds and opens the slide, reads its tile geometry and coordinates, and places the tiles.
fn plan(
    bundle: &ModelBundle,
    evaluation: &Evaluation,
    index: usize,
    attention: &SlideAttention,
    slides: &SlideIndex,
    options: &HeatmapOptions,
) -> Result<Plan, Error> {
    let slide = evaluation.cohort.table().slides()[index].slide.clone();
    let image = slides.find(&slide)?;
    let opened = Slide::open(&image)?;
    let file = evaluation.cohort.open_file(index)?;
    let tiles_error = |why: String| SlideError::Tiles {
        slide: slide.clone(),
        file: file.path().to_path_buf(),
        path: image.clone(),
        why,
    };
    let (rows, scores): (Vec<usize>, Vec<f64>) = attention.tile_scores().into_iter().unzip();
    let coords = file.read_coords(&rows)?.ok_or_else(|| {
        tiles_error("the tile file has no `coords` dataset, so its tiles have no place".into())
    })?;
    let geometry = read_tile_geometry(file.path())?.ok_or_else(|| {
        tiles_error("a `.pt` tile file has no coordinates; use the HDF5 file".into())
    })?;
    let scale = SlideScale {
        dimensions: opened.dimensions(),
        mpp: opened.mpp(),
        downsamples: opened.levels().iter().map(|l| l.downsample).collect(),
    };
    let placement = place(&coords, &geometry, &scale, options.overrides).map_err(tiles_error)?;
    Ok(Plan {
        caption: caption(bundle, evaluation, index),
        stem: sanitize(slide_stem(&slide)),
        slide,
        image,
        rows,
        scores,
        placement,
    })
}

/// The prediction in words: the class and its probability, or the risk.
fn caption(bundle: &ModelBundle, evaluation: &Evaluation, index: usize) -> String {
    let Some(p) = evaluation
        .predictions
        .slides
        .iter()
        .find(|p| p.slide == index)
    else {
        return "no prediction".to_string();
    };
    match bundle.task() {
        Task::Survival => match p.risk {
            Some(risk) => format!("predicted risk {risk:.3} (higher: shorter survival)"),
            None => "no prediction".to_string(),
        },
        Task::Classification => {
            let best = (0..p.probs.len())
                .max_by(|&a, &b| p.probs[a].total_cmp(&p.probs[b]))
                .unwrap_or(0);
            let name = bundle
                .labels
                .classes
                .get(best)
                .cloned()
                .unwrap_or_else(|| best.to_string());
            let prob = p.probs.get(best).copied().unwrap_or(f64::NAN);
            format!("predicted class {name} (p = {prob:.3})")
        }
    }
}

/// Draws one slide: overlay, GeoJSON, top tiles.
fn draw(plan: &Plan, out: &Path, options: &HeatmapOptions) -> Result<SlideHeatmap, Error> {
    let start = Instant::now();
    // Opened again rather than kept from `plan`: a cohort of thousands of slides would
    // otherwise hold a handle (and its file descriptors) per slide until the last is drawn.
    let slide = Slide::open(&plan.image)?;
    let thumb = slide.thumbnail(options.size)?;
    let (t, labels) = normalize(&plan.scores, options.style.normalize);
    let layer = score_layer(&thumb, &plan.placement, &t, options.style.blur);
    let overlay = blend(&thumb.image, &layer, options.style.alpha);
    let caption = format!(
        "{}: {}; {} tiles of {:.0} px, {} scale",
        plan.slide,
        plan.caption,
        plan.rows.len(),
        plan.placement.side,
        match options.style.normalize {
            Normalize::Rank => "rank",
            Normalize::Percentile => "percentile",
            Normalize::Raw => "raw",
        }
    );
    let png = out.join(format!("{}.png", plan.stem));
    with_footer(&overlay, &labels, &caption).write_png(&png)?;

    let ranks = ranks(&plan.scores);
    let features: Vec<TileFeature> = (0..plan.rows.len())
        .map(|i| TileFeature {
            tile: plan.rows[i],
            score: plan.scores[i],
            rank: ranks[i],
            colour: t[i],
        })
        .collect();
    let geojson = out.join(format!("{}.geojson", plan.stem));
    let text = collection(&plan.placement, &features);
    crate::util::atomic::write(&geojson, text.as_bytes()).map_err(RunFileError::io(&geojson))?;
    let top_tiles = if options.top_k > 0 {
        Some(top_tiles(plan, &slide, &ranks, out, options.top_k)?)
    } else {
        None
    };
    Ok(SlideHeatmap {
        slide: plan.slide.clone(),
        image: plan.image.clone(),
        overlay: png,
        geojson,
        top_tiles,
        caption: plan.caption.clone(),
        placement: plan.placement.how.clone(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Each tile's rank by score, 1 the highest (ties by tile row).
fn ranks(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut ranks = vec![0; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        ranks[i] = r + 1;
    }
    ranks
}

/// Cuts the `k` most and `k` least attended tiles (no tile twice) from level 0 into
/// `out/topk/`, and lists them in `out/topk/{stem}.csv`.
fn top_tiles(
    plan: &Plan,
    slide: &Slide,
    ranks: &[usize],
    out: &Path,
    k: usize,
) -> Result<PathBuf, Error> {
    let n = ranks.len();
    let mut by_rank = vec![0; n];
    for (i, &r) in ranks.iter().enumerate() {
        by_rank[r - 1] = i;
    }
    let most = k.min(n);
    let least = k.min(n - most);
    let picks = (0..most)
        .map(|r| ("most", r + 1, by_rank[r]))
        .chain((0..least).map(|r| ("least", r + 1, by_rank[n - 1 - r])));
    let mut csv = TOP_TILES_HEADER.join(",") + "\n";
    let side = plan.placement.side.round().max(1.0) as usize;
    for (kind, rank, i) in picks {
        let [x, y] = plan.placement.corners[i];
        let (x, y) = (x.round() as i64, y.round() as i64);
        let name = format!("{TOPK_DIR}/{}_{kind}{rank}.png", plan.stem);
        slide
            .read_region((x, y), (side, side))?
            .write_png(&out.join(&name))?;
        let _ = writeln!(
            csv,
            "{kind},{rank},{},{x},{y},{side},{:.7e},{name}",
            plan.rows[i], plan.scores[i]
        );
    }
    let path = out.join(TOPK_DIR).join(format!("{}.csv", plan.stem));
    crate::util::atomic::write(&path, csv.as_bytes()).map_err(RunFileError::io(&path))?;
    Ok(path)
}

/// Writes `out/heatmaps.csv`: `slide,overlay,geojson,top_tiles,prediction`, paths relative
/// to `out`.
fn write_manifest(out: &Path, drawn: &[SlideHeatmap]) -> Result<(), Error> {
    let relative = |p: &Path| {
        p.strip_prefix(out)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let row_error =
        |e: csv::Error| RunFileError::io(&out.join(HEATMAPS_CSV))(std::io::Error::other(e));
    w.write_record(HEATMAPS_HEADER).map_err(row_error)?;
    for d in drawn {
        let top = d.top_tiles.as_deref().map(relative).unwrap_or_default();
        w.write_record([
            d.slide.as_str(),
            &relative(&d.overlay),
            &relative(&d.geojson),
            &top,
            &d.caption,
        ])
        .map_err(row_error)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| row_error(e.into_error().into()))?;
    let path = out.join(HEATMAPS_CSV);
    crate::util::atomic::write(&path, &bytes).map_err(RunFileError::io(&path))?;
    Ok(())
}

/// A slide id as a file name: path separators and other awkward characters become `_`.
pub(super) fn sanitize(slide: &str) -> String {
    slide
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_put_the_highest_first_and_break_ties_by_row() {
        assert_eq!(ranks(&[0.1, 0.5, 0.5, 0.0]), vec![3, 1, 2, 4]);
    }
}
