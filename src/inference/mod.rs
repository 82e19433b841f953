//! Prediction with attention maps: per-slide predictions of a trained model, and for each
//! slide the tile and gene attention as CSVs, a heatmap drawn from the tile coordinates and,
//! with the slides at hand, heatmaps over the slide images themselves ([`overlay`]).

mod attention;
mod heatmap;
pub mod overlay;

pub use attention::{AttentionCollector, SlideAttention};
pub use heatmap::{HEATMAP_SIZE, MIN_RELATIVE_SPAN, colour_range, draw_heatmap, tile_colours};
pub use overlay::{HeatmapOptions, SlideHeatmap, draw_heatmaps};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::eval::{EvaluateRequest, Evaluation, evaluate};
use crate::run::{Error, ModelBundle, RunFileError};

/// What the attention export wrote for one slide.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionFiles {
    /// The slide id.
    pub slide: String,
    /// Per-tile scores: `tile,x,y,score` (or `tile,score` without coordinates), one row per
    /// tile in row order: `tile` is the row of the slide's features dataset, `x`, `y` its
    /// coordinates, and `score` its share of the slide's attention, comparable across the
    /// slide's bags ([`SlideAttention::tile_scores`]): the scores sum to 1 over the slide and
    /// an evenly attended slide of `N` tiles has `1 / N` everywhere.
    pub tiles_csv: PathBuf,
    /// Per-gene scores (per group with the pathways tokenizer): `gene,score`, summing to 1
    /// ([`SlideAttention::gene_scores`]).
    pub genes_csv: PathBuf,
    /// The heatmap, or why there is none.
    pub heatmap: Result<PathBuf, String>,
}

/// Predicts every slide of the cohort; with `attention_dir`, also writes each slide's
/// attention there (see [`SlideAttention`] and [`write_attention`]).
///
/// # Errors
///
/// The errors of [`evaluate`]; [`RunFileError::Io`] naming an attention file that could not be
/// written.
pub fn predict_cohort(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    device: &Device,
    attention_dir: Option<&Path>,
) -> Result<(Evaluation, Vec<AttentionFiles>), Error> {
    let Some(dir) = attention_dir else {
        return Ok((evaluate(bundle, request, device, false, None)?, Vec::new()));
    };
    let (evaluation, attention) = predict_with_attention(bundle, request, device)?;
    let written = write_attention(bundle, &evaluation, &attention, dir)?;
    Ok((evaluation, written))
}

/// Predicts every slide of the cohort and collects each slide's attention, by cohort index.
///
/// # Errors
///
/// The errors of [`evaluate`].
pub fn predict_with_attention(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    device: &Device,
) -> Result<(Evaluation, BTreeMap<usize, SlideAttention>), Error> {
    let mut collector = AttentionCollector::default();
    let mut hook = |batch: &crate::data::BagBatch, out: &crate::model::MedCrossViTOutput| {
        collector.add(batch, out);
        Ok(())
    };
    let evaluation = evaluate(bundle, request, device, true, Some(&mut hook))?;
    Ok((evaluation, collector.into_slides()))
}

/// Writes each slide's attention into `dir`: `{slide}.tiles.csv`, `{slide}.genes.csv` and,
/// where the tiles have coordinates, `{slide}.heatmap.png` (the scores on a blank grid).
///
/// # Errors
///
/// Read errors of the tile files; [`RunFileError::Io`] naming a file that could not be
/// written.
pub fn write_attention(
    bundle: &ModelBundle,
    evaluation: &Evaluation,
    attention: &BTreeMap<usize, SlideAttention>,
    dir: &Path,
) -> Result<Vec<AttentionFiles>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| RunFileError::io(dir)(e))?;
    let mut written = Vec::new();
    for (&index, attention) in attention {
        let slide = evaluation.cohort.table().slides()[index].slide.clone();
        let stem = overlay::sanitize(&slide);
        let file = evaluation.cohort.open_file(index)?;
        let tiles = attention.tile_scores();
        let rows: Vec<usize> = tiles.iter().map(|(r, _)| *r).collect();
        let coords = file.read_coords(&rows)?;
        let tiles_csv = dir.join(format!("{stem}.tiles.csv"));
        write_tiles_csv(&tiles_csv, &tiles, coords.as_deref())?;
        let genes_csv = dir.join(format!("{stem}.genes.csv"));
        write_genes_csv(&genes_csv, bundle, evaluation, attention)?;
        let heatmap = match &coords {
            Some(c) => {
                let png = dir.join(format!("{stem}.heatmap.png"));
                let scores: Vec<f64> = tiles.iter().map(|(_, s)| *s).collect();
                draw_heatmap(&png, &format!("{slide}: tile attention"), c, &scores)?;
                Ok(png)
            }
            None => Err(format!("{} has no `coords` dataset", file.path().display())),
        };
        written.push(AttentionFiles {
            slide,
            tiles_csv,
            genes_csv,
            heatmap,
        });
    }
    Ok(written)
}

/// `tile,x,y,score` (or `tile,score` without coordinates).
fn write_tiles_csv(
    path: &Path,
    tiles: &[(usize, f64)],
    coords: Option<&[[f64; 2]]>,
) -> Result<(), Error> {
    let mut text = String::from(if coords.is_some() {
        "tile,x,y,score\n"
    } else {
        "tile,score\n"
    });
    // Scores are about 1 / tiles (1 / genes): fixed decimals would keep few significant
    // digits of a slide of thousands of tiles or a whole transcriptome.
    for (i, (row, score)) in tiles.iter().enumerate() {
        match coords {
            Some(c) => text.push_str(&format!("{row},{},{},{score:.7e}\n", c[i][0], c[i][1])),
            None => text.push_str(&format!("{row},{score:.7e}\n")),
        }
    }
    std::fs::write(path, text).map_err(|e| RunFileError::io(path)(e))?;
    Ok(())
}

/// `gene,score` (per group with the pathways tokenizer).
fn write_genes_csv(
    path: &Path,
    bundle: &ModelBundle,
    evaluation: &Evaluation,
    attention: &SlideAttention,
) -> Result<(), Error> {
    let mut text = String::from("gene,score\n");
    let names: Vec<String> = match &bundle.model.config().rna_tokenizer {
        crate::model::RnaTokenizer::Pathways { groups } => {
            groups.iter().map(|g| g.name.clone()).collect()
        }
        _ => evaluation.cohort.table().genes().to_vec(),
    };
    for (name, score) in names.iter().zip(attention.gene_scores()) {
        text.push_str(&format!("{name},{score:.7e}\n"));
    }
    std::fs::write(path, text).map_err(|e| RunFileError::io(path)(e))?;
    Ok(())
}

/// Predicts the cohort and draws each slide's heatmap over its whole-slide image into `out`
/// (see [`draw_heatmaps`]).
///
/// # Errors
///
/// The errors of [`evaluate`] and [`draw_heatmaps`].
pub fn heatmaps(
    bundle: &ModelBundle,
    request: &EvaluateRequest,
    device: &Device,
    out: &Path,
    options: &HeatmapOptions,
) -> Result<(Evaluation, Vec<SlideHeatmap>), Error> {
    let (evaluation, attention) = predict_with_attention(bundle, request, device)?;
    let drawn = draw_heatmaps(bundle, &evaluation, &attention, out, options)?;
    Ok((evaluation, drawn))
}
