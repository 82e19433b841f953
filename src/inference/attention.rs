//! Collecting cross-attention scores per slide while predicting.

use std::collections::BTreeMap;

use crate::data::BagBatch;
use crate::model::MedCrossViTOutput;
use crate::train::to_rows;

/// The attention of one slide: a score per tile (the RNA CLS token's cross-attention over
/// the tiles, averaged over heads and fusion layers, renormalized over each bag's tiles so
/// that a bag's scores sum to 1, and averaged over the bags that hold the tile) and a score
/// per gene (the WSI CLS token's cross-attention, likewise, averaged over the slide's bags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlideAttention {
    /// Sum of the scores each tile received, by tile row.
    tile_sums: BTreeMap<usize, (f64, usize)>,
    /// Sum of the gene scores over bags.
    gene_sums: Vec<f64>,
    /// Bags seen.
    bags: usize,
}

impl SlideAttention {
    /// `(tile row, score)` in row order.
    pub fn tile_scores(&self) -> Vec<(usize, f64)> {
        self.tile_sums
            .iter()
            .map(|(&r, &(s, n))| (r, s / n as f64))
            .collect()
    }

    /// Score per gene, in gene order.
    pub fn gene_scores(&self) -> Vec<f64> {
        self.gene_sums
            .iter()
            .map(|s| s / self.bags.max(1) as f64)
            .collect()
    }

    /// Bags averaged.
    pub fn bags(&self) -> usize {
        self.bags
    }
}

/// Attention per slide, filled batch by batch.
#[derive(Debug, Default)]
pub struct AttentionCollector {
    slides: BTreeMap<usize, SlideAttention>,
}

impl AttentionCollector {
    /// Adds a batch's attention (the model must have been asked for it).
    pub fn add(&mut self, batch: &BagBatch, output: &MedCrossViTOutput) {
        let Some(attention) = &output.attention else {
            return;
        };
        let tiles = to_rows(attention.tile_scores());
        let genes = to_rows(attention.gene_scores());
        for (b, bag) in batch.bags.iter().enumerate() {
            let slide = self.slides.entry(bag.slide).or_default();
            for (i, &row) in bag.rows.iter().enumerate() {
                let entry = slide.tile_sums.entry(row).or_insert((0.0, 0));
                entry.0 += tiles[b][i];
                entry.1 += 1;
            }
            if slide.gene_sums.is_empty() {
                slide.gene_sums = vec![0.0; genes[b].len()];
            }
            slide
                .gene_sums
                .iter_mut()
                .zip(&genes[b])
                .for_each(|(s, g)| *s += g);
            slide.bags += 1;
        }
    }

    /// The collected attention, by slide index.
    pub fn into_slides(self) -> BTreeMap<usize, SlideAttention> {
        self.slides
    }
}
