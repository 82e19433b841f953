//! Which tiles go into which bag: random sampling for training, file order for evaluation.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::DataError;

/// How slides are cut into bags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BagSettings {
    /// Tiles per bag. Default 50 (the original's `wsi_num_tiles`).
    pub bag_size: usize,
    /// Most tiles sampled from one slide per training epoch. Default 2000.
    pub max_patches_total: usize,
    /// Seed of the per-epoch sampling.
    pub seed: u64,
}

impl Default for BagSettings {
    fn default() -> Self {
        Self {
            bag_size: 50,
            max_patches_total: 2000,
            seed: 0,
        }
    }
}

impl BagSettings {
    /// Checks that the sizes are at least 1.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] naming the setting.
    pub fn validate(&self) -> Result<(), DataError> {
        for (setting, value) in [
            ("bag_size", self.bag_size),
            ("max_patches_total", self.max_patches_total),
        ] {
            if value == 0 {
                return Err(DataError::Setting {
                    setting,
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

/// One bag: a slide (an index into the cohort) and the tile rows it holds, in bag order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagRef {
    /// The slide's index in the cohort.
    pub slide: usize,
    /// Tile rows of the slide's features dataset.
    pub rows: Vec<usize>,
}

/// Training bags of one epoch: from each slide, up to `max_patches_total` tiles sampled
/// without replacement, cut into ⌊m / bag_size⌋ bags of `bag_size` tiles (the original's
/// scheme). A slide with fewer than `bag_size` tiles gives one smaller bag rather than none, so
/// no slide drops out of training. The sample depends only on the seed, the epoch and the
/// slide, so runs are reproducible.
///
/// `slides` are `(slide index, tile count)` pairs.
pub fn training_bags(slides: &[(usize, usize)], settings: &BagSettings, epoch: u64) -> Vec<BagRef> {
    let mut bags = Vec::new();
    for &(slide, tiles) in slides {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(settings.seed, epoch, slide as u64));
        let m = tiles.min(settings.max_patches_total);
        let rows = sample(&mut rng, tiles, m).into_vec();
        if m < settings.bag_size {
            bags.push(BagRef { slide, rows });
            continue;
        }
        for chunk in rows.chunks_exact(settings.bag_size) {
            bags.push(BagRef {
                slide,
                rows: chunk.to_vec(),
            });
        }
    }
    bags
}

/// Evaluation bags: every tile in file order, consecutive bags of `bag_size`, the last one
/// possibly shorter (it is padded and masked in the batch, not dropped).
pub fn evaluation_bags(slides: &[(usize, usize)], bag_size: usize) -> Vec<BagRef> {
    let mut bags = Vec::new();
    for &(slide, tiles) in slides {
        let mut start = 0;
        while start < tiles {
            let end = (start + bag_size).min(tiles);
            bags.push(BagRef {
                slide,
                rows: (start..end).collect(),
            });
            start = end;
        }
    }
    bags
}

/// A well-spread 64-bit seed from three numbers (SplitMix64 finalizer).
#[inline]
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_keeps_the_last_partial_bag() {
        let bags = evaluation_bags(&[(0, 7), (1, 2), (2, 6)], 3);
        let rows: Vec<(usize, Vec<usize>)> = bags.into_iter().map(|b| (b.slide, b.rows)).collect();
        assert_eq!(
            rows,
            vec![
                (0, vec![0, 1, 2]),
                (0, vec![3, 4, 5]),
                (0, vec![6]),
                (1, vec![0, 1]),
                (2, vec![0, 1, 2]),
                (2, vec![3, 4, 5]),
            ]
        );
    }

    #[test]
    fn training_counts_reproducibility_and_reshuffling() {
        let settings = BagSettings {
            bag_size: 4,
            max_patches_total: 10,
            seed: 3,
        };
        let slides = [(0, 25), (1, 9), (2, 3)];
        let a = training_bags(&slides, &settings, 0);
        // Slide 0: min(25, 10) = 10 tiles → 2 bags; slide 1: 9 → 2 bags; slide 2: 3 < 4 → 1.
        let per_slide: Vec<usize> = (0..3)
            .map(|s| a.iter().filter(|b| b.slide == s).count())
            .collect();
        assert_eq!(per_slide, [2, 2, 1]);
        assert_eq!(a.iter().find(|b| b.slide == 2).unwrap().rows.len(), 3);
        for bag in &a {
            let mut rows = bag.rows.clone();
            rows.sort();
            rows.dedup();
            assert_eq!(rows.len(), bag.rows.len(), "no tile twice in a bag");
        }
        // No tile in two bags of the same slide and epoch.
        let mut slide0: Vec<usize> = a
            .iter()
            .filter(|b| b.slide == 0)
            .flat_map(|b| b.rows.clone())
            .collect();
        slide0.sort();
        slide0.dedup();
        assert_eq!(slide0.len(), 8);
        assert_eq!(
            a,
            training_bags(&slides, &settings, 0),
            "same seed and epoch, same bags"
        );
        assert_ne!(
            a,
            training_bags(&slides, &settings, 1),
            "a new epoch resamples"
        );
        let other = BagSettings {
            seed: 4,
            ..settings
        };
        assert_ne!(a, training_bags(&slides, &other, 0), "a new seed resamples");
    }
}
