//! Collecting cross-attention scores per slide while predicting.
//!
//! The model only ever compares a tile with the other tiles of its bag: each bag's tile
//! weights are a softmax over that bag alone and sum to 1 whatever the bag's size, so a tile
//! of a 2-tile bag gets about 0.5 and a tile of a 50-tile bag about 0.02 for the same
//! attention. Scores are therefore taken relative to the bag's uniform share before bags are
//! put side by side (see [`SlideAttention::tile_scores`]).

use std::collections::BTreeMap;

use crate::data::BagBatch;
use crate::eval::to_rows;
use crate::model::MedCrossViTOutput;

/// The attention of one slide: a score per tile (the RNA CLS token's cross-attention) and a
/// score per gene (the WSI CLS token's cross-attention), both comparable across the slide's
/// bags and summing to 1 over the slide. See [`tile_scores`](Self::tile_scores) and
/// [`gene_scores`](Self::gene_scores) for the definitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlideAttention {
    /// By tile row: the sum of the tile's relative attention `n_b · a` over the bags that
    /// hold it, and how many bags that is.
    tile_lifts: BTreeMap<usize, (f64, usize)>,
    /// Gene scores summed over bags, each bag weighted by its tile count.
    gene_sums: Vec<f64>,
    /// Tiles over all bags seen (the total weight of `gene_sums`).
    gene_weight: f64,
    /// Bags seen.
    bags: usize,
}

impl SlideAttention {
    /// `(tile row, score)` in row order.
    ///
    /// A tile's in-bag attention `a` is the RNA CLS token's cross-attention weight on it,
    /// averaged over heads and fusion layers and renormalized over the bag's `n_b` real tiles
    /// (its weight on itself left out), so that it sums to 1 over the bag. The tile's score
    /// over a slide of `N` tiles is
    ///
    /// ```text
    /// score = n_b · a / N
    /// ```
    ///
    /// that is, each bag's scores weighted by the bag's share `n_b / N` of the slide's tiles
    /// (averaged over the bags that hold the tile, should there be several). `n_b · a` is the
    /// tile's attention relative to a uniform bag (1 = what every tile of an evenly attended
    /// bag gets), which does not depend on the bag's size; dividing by `N` makes the slide's
    /// scores sum to 1, and a slide attended evenly gets `1 / N` on every tile however it was
    /// cut into bags. The model never compares tiles of different bags, so a score says how
    /// much a tile stood out among its bag-mates, not against the whole slide.
    pub fn tile_scores(&self) -> Vec<(usize, f64)> {
        let tiles = self.tile_lifts.len() as f64;
        self.tile_lifts
            .iter()
            .map(|(&r, &(lift, bags))| (r, lift / bags as f64 / tiles))
            .collect()
    }

    /// Score per gene (per group with the pathways tokenizer), in gene order: the WSI CLS
    /// token's cross-attention over the genes, averaged over heads and fusion layers and
    /// renormalized over the genes (its weight on itself left out), then averaged over the
    /// slide's bags with each bag weighted by its share of the slide's tiles, as the tile
    /// scores are. Every bag sees every gene, so each bag's gene scores already sum to 1 on
    /// the same scale; the weighting keeps a short last bag (a view of a few tiles) from
    /// counting as much as a full one. The scores sum to 1 over the genes.
    pub fn gene_scores(&self) -> Vec<f64> {
        let weight = if self.gene_weight > 0.0 {
            self.gene_weight
        } else {
            1.0
        };
        self.gene_sums.iter().map(|s| s / weight).collect()
    }

    /// Bags collected.
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
            // What a sample does not have gets no scores: a bag without tiles, or without
            // expression, is skipped (its slide has attention only from its other bags).
            if !(batch.wsi[b] && batch.rna[b]) {
                continue;
            }
            // Evaluation bags hold one slide each; a pooled bag's tiles go to their slides.
            let n = bag.len() as f64;
            for (index, rows, positions) in bag.by_slide() {
                let slide = self.slides.entry(index).or_default();
                for (&row, &i) in rows.iter().zip(&positions) {
                    let entry = slide.tile_lifts.entry(row).or_insert((0.0, 0));
                    entry.0 += n * tiles[b][i];
                    entry.1 += 1;
                }
                if slide.gene_sums.is_empty() {
                    slide.gene_sums = vec![0.0; genes[b].len()];
                }
                let share = rows.len() as f64;
                slide
                    .gene_sums
                    .iter_mut()
                    .zip(&genes[b])
                    .for_each(|(s, g)| *s += share * g);
                slide.gene_weight += share;
                slide.bags += 1;
            }
        }
    }

    /// The collected attention, by slide index.
    pub fn into_slides(self) -> BTreeMap<usize, SlideAttention> {
        self.slides
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;
    use crate::data::{BagRef, Target};
    use crate::model::FusionAttention;

    /// A batch of `bags` with hand-set attention: `tiles[b]` are bag `b`'s weights over
    /// `[RNA CLS, tiles…]` and `genes[b]` the WSI CLS token's over `[itself, genes…]`, one
    /// layer and one head, padded with zeros to the longest bag.
    fn batch(
        bags: &[(usize, Vec<usize>)],
        tiles: &[Vec<f32>],
        genes: &[Vec<f32>],
    ) -> (BagBatch, MedCrossViTOutput) {
        let device = Device::flex();
        let b = bags.len();
        let width = tiles.iter().map(Vec::len).max().unwrap();
        let flat: Vec<f32> = tiles
            .iter()
            .flat_map(|t| {
                let mut row = t.clone();
                row.resize(width, 0.0);
                row
            })
            .collect();
        let g = genes[0].len();
        let gene_flat: Vec<f32> = genes.iter().flatten().copied().collect();
        let zeros2 = |c: usize| Tensor::<2>::zeros([b, c], &device);
        let batch = BagBatch {
            tiles: Tensor::zeros([b, width - 1, 1], &device),
            padding: None,
            expression: zeros2(g - 1),
            classes: None,
            bags: bags
                .iter()
                .map(|(slide, rows)| BagRef {
                    patient: *slide,
                    tiles: rows.iter().map(|&r| (*slide, r)).collect(),
                    wsi: true,
                })
                .collect(),
            targets: vec![Target::default(); b],
            wsi: vec![true; b],
            rna: vec![true; b],
        };
        let output = MedCrossViTOutput {
            logits: zeros2(2),
            wsi_logits: zeros2(2),
            rna_logits: zeros2(2),
            wsi_embedding: zeros2(1),
            rna_embedding: zeros2(1),
            attention: Some(FusionAttention {
                rna_cls_over_tiles: Tensor::from_data(
                    TensorData::new(flat, [b, 1, 1, width]),
                    &device,
                ),
                wsi_cls_over_genes: Tensor::from_data(
                    TensorData::new(gene_flat, [b, 1, 1, g]),
                    &device,
                ),
            }),
        };
        (batch, output)
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn bag_scores_are_weighted_by_the_bags_share_of_tiles() {
        let mut collector = AttentionCollector::default();
        // Slide 0: a bag of tiles 0..3 and a last bag of tile 3 alone, in one batch.
        // Bag 0 over [CLS, t0, t1, t2] = [0.2, 0.4, 0.2, 0.2] → in-bag 0.5, 0.25, 0.25.
        // Bag 1 over [CLS, t3] = [0.5, 0.5] → in-bag 1.
        // Genes: bag 0 over [CLS, g0, g1] = [0.5, 0.25, 0.25] → 0.5, 0.5;
        //        bag 1 = [0.0, 0.9, 0.1] → 0.9, 0.1.
        let (b, out) = batch(
            &[(0, vec![0, 1, 2]), (0, vec![3])],
            &[vec![0.2, 0.4, 0.2, 0.2], vec![0.5, 0.5]],
            &[vec![0.5, 0.25, 0.25], vec![0.0, 0.9, 0.1]],
        );
        collector.add(&b, &out);
        let slides = collector.into_slides();
        let slide = &slides[&0];
        assert_eq!(slide.bags(), 2);
        // N = 4: tile score = n_b · a / N → 3·0.5/4, 3·0.25/4, 3·0.25/4, 1·1/4. The lone
        // tile of the short bag (in-bag score 1) gets 0.25, less than tile 0, which its bag
        // singled out.
        let scores: Vec<f64> = slide.tile_scores().iter().map(|s| s.1).collect();
        close(&scores, &[0.375, 0.1875, 0.1875, 0.25]);
        assert_eq!(
            slide.tile_scores().iter().map(|s| s.0).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        // Genes: (3·[0.5, 0.5] + 1·[0.9, 0.1]) / 4 = [0.6, 0.4].
        close(&slide.gene_scores(), &[0.6, 0.4]);
    }

    #[test]
    fn even_attention_gives_every_tile_one_over_n_whatever_the_bag_sizes() {
        let mut collector = AttentionCollector::default();
        // Slide 5 cut into bags of 4, 1 and 2 tiles over two batches; every bag attends
        // evenly (with some weight on the CLS token, which is left out).
        let even = |n: usize| {
            let mut w = vec![0.1];
            w.extend(std::iter::repeat_n(0.9 / n as f32, n));
            w
        };
        let (b, out) = batch(
            &[(5, vec![0, 1, 2, 3]), (5, vec![6])],
            &[even(4), even(1)],
            &[vec![0.0, 1.0], vec![0.0, 1.0]],
        );
        collector.add(&b, &out);
        let (b, out) = batch(&[(5, vec![4, 5])], &[even(2)], &[vec![0.0, 1.0]]);
        collector.add(&b, &out);
        let slides = collector.into_slides();
        let scores: Vec<f64> = slides[&5].tile_scores().iter().map(|s| s.1).collect();
        close(&scores, &[1.0 / 7.0; 7]);
        close(&slides[&5].gene_scores(), &[1.0]);
    }
}
