//! Prediction with attention maps: per-slide predictions of a trained model, and for each
//! slide the tile and gene attention as CSVs and a heatmap drawn from the tile coordinates.

mod attention;
mod heatmap;

pub use attention::{AttentionCollector, SlideAttention};
pub use heatmap::{HEATMAP_SIZE, MIN_RELATIVE_SPAN, colour_range, draw_heatmap, tile_colours};

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
/// attention there (see [`SlideAttention`]).
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
    let mut collector = AttentionCollector::default();
    let mut hook = |batch: &crate::data::BagBatch, out: &crate::model::MedCrossViTOutput| {
        collector.add(batch, out);
        Ok(())
    };
    let evaluation = evaluate(bundle, request, device, true, Some(&mut hook))?;
    std::fs::create_dir_all(dir).map_err(|e| RunFileError::io(dir)(e))?;
    let mut written = Vec::new();
    for (index, attention) in collector.into_slides() {
        let slide = evaluation.cohort.table().slides()[index].slide.clone();
        let stem = sanitize(&slide);
        let file = evaluation.cohort.open_file(index)?;
        let tiles = attention.tile_scores();
        let rows: Vec<usize> = tiles.iter().map(|(r, _)| *r).collect();
        let coords = file.read_coords(&rows)?;

        let tiles_csv = dir.join(format!("{stem}.tiles.csv"));
        let mut text = String::from(if coords.is_some() {
            "tile,x,y,score\n"
        } else {
            "tile,score\n"
        });
        // Scores are about 1 / tiles (1 / genes): fixed decimals would keep few significant
        // digits of a slide of thousands of tiles or a whole transcriptome.
        for (i, (row, score)) in tiles.iter().enumerate() {
            match &coords {
                Some(c) => text.push_str(&format!("{row},{},{},{score:.7e}\n", c[i][0], c[i][1])),
                None => text.push_str(&format!("{row},{score:.7e}\n")),
            }
        }
        std::fs::write(&tiles_csv, text).map_err(|e| RunFileError::io(&tiles_csv)(e))?;

        let genes_csv = dir.join(format!("{stem}.genes.csv"));
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
        std::fs::write(&genes_csv, text).map_err(|e| RunFileError::io(&genes_csv)(e))?;

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
    Ok((evaluation, written))
}

/// A slide id as a file name: path separators and other awkward characters become `_`.
fn sanitize(slide: &str) -> String {
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
