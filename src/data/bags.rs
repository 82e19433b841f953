//! Which tiles go into which bag: random sampling for training, file order for evaluation.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::DataError;
use crate::util::seed::mix;

/// How slides are cut into bags: the one home of these settings (a run's
/// [`TrainSettings`](crate::run::TrainSettings) holds them, `config.json` keeps them beside
/// the other training settings, the CLI takes its defaults from here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BagSettings {
    /// Tiles per bag. Default 50 (the original's `wsi_num_tiles`).
    pub bag_size: usize,
    /// Most tiles sampled from one bag source (a patient's pooled slides, or one slide) per
    /// training epoch. Default 2000.
    pub max_patches_total: usize,
}

impl Default for BagSettings {
    fn default() -> Self {
        Self {
            bag_size: 50,
            max_patches_total: 2000,
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

/// One bag: its patient and its tiles, in bag order, each a `(slide, row)` pair: a slide
/// (an index into the cohort table) and a row of that slide's features. A bag drawn from a
/// patient's pool may hold tiles of several slides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagRef {
    /// The patient (an index into [`Patients`](super::Patients)).
    pub patient: usize,
    /// `(slide, row)` of each tile.
    pub tiles: Vec<(usize, usize)>,
    /// Whether the bag has tiles. A source without tiles (no tile file: a missing modality)
    /// gets one bag whose single `(slide, 0)` entry only names its slide: nothing is read,
    /// and the model sees the tiles as missing.
    pub wsi: bool,
}

impl BagRef {
    /// The bag of a source without tiles: one placeholder entry naming `slide`.
    pub fn without_tiles(patient: usize, slide: usize) -> Self {
        Self {
            patient,
            tiles: vec![(slide, 0)],
            wsi: false,
        }
    }

    /// Number of tiles (1 for a bag without tiles: its placeholder).
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether the bag has no tile.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The bag's tiles grouped by slide, in order of first appearance: `(slide, rows, bag
    /// positions)`.
    pub fn by_slide(&self) -> Vec<(usize, Vec<usize>, Vec<usize>)> {
        let mut groups: Vec<(usize, Vec<usize>, Vec<usize>)> = Vec::new();
        for (position, &(slide, row)) in self.tiles.iter().enumerate() {
            match groups.iter_mut().find(|g| g.0 == slide) {
                Some(g) => {
                    g.1.push(row);
                    g.2.push(position);
                }
                None => groups.push((slide, vec![row], vec![position])),
            }
        }
        groups
    }
}

/// Where one patient's (or one slide's) bags come from: its slides and their tile counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagSource {
    /// The patient the bags belong to.
    pub patient: usize,
    /// `(slide, tile count)` of each slide pooled.
    pub slides: Vec<(usize, usize)>,
}

/// Training bags of one epoch: from each source, up to `max_patches_total` tiles sampled
/// without replacement from the union of its slides' tiles, cut into ⌊m / bag_size⌋ bags of
/// `bag_size` tiles (the original's scheme). A source with fewer than `bag_size` tiles gives
/// one smaller bag rather than none, so no patient drops out of training. The sample depends
/// only on the seed, the epoch and the source's first slide, so runs are reproducible (and a
/// one-slide source samples as that slide alone would).
pub fn training_bags(
    sources: &[BagSource],
    settings: &BagSettings,
    seed: u64,
    epoch: u64,
) -> Vec<BagRef> {
    let mut bags = Vec::new();
    for source in sources {
        let Some(&(first, _)) = source.slides.first() else {
            continue;
        };
        let total: usize = source.slides.iter().map(|&(_, n)| n).sum();
        if total == 0 {
            bags.push(BagRef::without_tiles(source.patient, first));
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, epoch, first as u64));
        let m = total.min(settings.max_patches_total);
        let tiles: Vec<(usize, usize)> = sample(&mut rng, total, m)
            .into_iter()
            .map(|flat| locate_tile(&source.slides, flat))
            .collect();
        if m < settings.bag_size {
            bags.push(BagRef {
                patient: source.patient,
                tiles,
                wsi: true,
            });
            continue;
        }
        for chunk in tiles.chunks_exact(settings.bag_size) {
            bags.push(BagRef {
                patient: source.patient,
                tiles: chunk.to_vec(),
                wsi: true,
            });
        }
    }
    bags
}

/// The `(slide, row)` of tile `flat` of the concatenated slides.
fn locate_tile(slides: &[(usize, usize)], mut flat: usize) -> (usize, usize) {
    for &(slide, n) in slides {
        if flat < n {
            return (slide, flat);
        }
        flat -= n;
    }
    unreachable!("a sampled index lies below the total tile count")
}

/// Evaluation bags: every tile of every slide of each source, slide by slide in file order,
/// consecutive bags of `bag_size`, each slide's last one possibly shorter (it is padded and
/// masked in the batch, not dropped). A bag never spans two slides, so predictions can be
/// reported per slide as well as per patient. A source whose slides have no tiles gets one
/// bag without tiles ([`BagRef::without_tiles`]).
pub fn evaluation_bags(sources: &[BagSource], bag_size: usize) -> Vec<BagRef> {
    let mut bags = Vec::new();
    for source in sources {
        if source.slides.iter().all(|&(_, n)| n == 0) {
            if let Some(&(slide, _)) = source.slides.first() {
                bags.push(BagRef::without_tiles(source.patient, slide));
            }
            continue;
        }
        for &(slide, tiles) in &source.slides {
            let mut start = 0;
            while start < tiles {
                let end = (start + bag_size).min(tiles);
                bags.push(BagRef {
                    patient: source.patient,
                    tiles: (start..end).map(|row| (slide, row)).collect(),
                    wsi: true,
                });
                start = end;
            }
        }
    }
    bags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_slide_sources(slides: &[(usize, usize)]) -> Vec<BagSource> {
        slides
            .iter()
            .map(|&(slide, n)| BagSource {
                patient: slide,
                slides: vec![(slide, n)],
            })
            .collect()
    }

    #[test]
    fn evaluation_keeps_the_last_partial_bag_of_each_slide() {
        let sources = vec![
            BagSource {
                patient: 0,
                slides: vec![(0, 7), (1, 2)],
            },
            BagSource {
                patient: 1,
                slides: vec![(2, 6)],
            },
        ];
        let bags = evaluation_bags(&sources, 3);
        let rows: Vec<(usize, Vec<(usize, usize)>)> =
            bags.into_iter().map(|b| (b.patient, b.tiles)).collect();
        assert_eq!(
            rows,
            vec![
                (0, vec![(0, 0), (0, 1), (0, 2)]),
                (0, vec![(0, 3), (0, 4), (0, 5)]),
                (0, vec![(0, 6)]),
                (0, vec![(1, 0), (1, 1)]),
                (1, vec![(2, 0), (2, 1), (2, 2)]),
                (1, vec![(2, 3), (2, 4), (2, 5)]),
            ]
        );
    }

    #[test]
    fn training_counts_reproducibility_and_reshuffling() {
        let settings = BagSettings {
            bag_size: 4,
            max_patches_total: 10,
        };
        let seed = 3;
        let sources = one_slide_sources(&[(0, 25), (1, 9), (2, 3)]);
        let a = training_bags(&sources, &settings, seed, 0);
        // Slide 0: min(25, 10) = 10 tiles → 2 bags; slide 1: 9 → 2 bags; slide 2: 3 < 4 → 1.
        let per_slide: Vec<usize> = (0..3)
            .map(|s| a.iter().filter(|b| b.patient == s).count())
            .collect();
        assert_eq!(per_slide, [2, 2, 1]);
        assert_eq!(a.iter().find(|b| b.patient == 2).unwrap().len(), 3);
        for bag in &a {
            let mut tiles = bag.tiles.clone();
            tiles.sort();
            tiles.dedup();
            assert_eq!(tiles.len(), bag.len(), "no tile twice in a bag");
            assert!(bag.tiles.iter().all(|&(s, _)| s == bag.patient));
        }
        // No tile in two bags of the same slide and epoch.
        let mut slide0: Vec<(usize, usize)> = a
            .iter()
            .filter(|b| b.patient == 0)
            .flat_map(|b| b.tiles.clone())
            .collect();
        slide0.sort();
        slide0.dedup();
        assert_eq!(slide0.len(), 8);
        assert_eq!(
            a,
            training_bags(&sources, &settings, seed, 0),
            "same seed and epoch, same bags"
        );
        assert_ne!(
            a,
            training_bags(&sources, &settings, seed, 1),
            "a new epoch resamples"
        );
        assert_ne!(
            a,
            training_bags(&sources, &settings, 4, 0),
            "a new seed resamples"
        );
    }

    #[test]
    fn a_patient_pool_samples_from_all_its_slides() {
        let settings = BagSettings {
            bag_size: 5,
            max_patches_total: 1000,
        };
        // Slides of 6 and 9 tiles: 15 tiles in all → 3 bags of 5 holding every tile once.
        let pool = [BagSource {
            patient: 0,
            slides: vec![(4, 6), (7, 9)],
        }];
        let bags = training_bags(&pool, &settings, 1, 0);
        assert_eq!(bags.len(), 3);
        let mut tiles: Vec<(usize, usize)> = bags.iter().flat_map(|b| b.tiles.clone()).collect();
        tiles.sort();
        let expected: Vec<(usize, usize)> = (0..6)
            .map(|r| (4, r))
            .chain((0..9).map(|r| (7, r)))
            .collect();
        assert_eq!(tiles, expected);
        // The sample mixes the slides within bags (the pool is one).
        assert!(bags.iter().any(|b| b.by_slide().len() == 2));
        // With the cap at 10, 10 of the 15 tiles are drawn: 2 bags.
        let capped = BagSettings {
            max_patches_total: 10,
            ..settings
        };
        assert_eq!(training_bags(&pool, &capped, 1, 0).len(), 2);
    }

    #[test]
    fn by_slide_groups_rows_with_their_positions() {
        let bag = BagRef {
            patient: 0,
            tiles: vec![(3, 5), (1, 0), (3, 2), (1, 9)],
            wsi: true,
        };
        assert_eq!(
            bag.by_slide(),
            vec![(3, vec![5, 2], vec![0, 2]), (1, vec![0, 9], vec![1, 3])]
        );
    }
}
