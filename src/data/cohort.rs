//! [`Cohort`]: the cohort CSV joined with each slide's tile-feature file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::bags::BagSource;
use super::tiles::{TileFile, locate};
use super::{CohortTable, DataError, Patients, Unit};

/// Where the tile-feature files are and how to read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileOptions {
    /// The features directory: `{dir}/{project}/{slide}.h5` or `{dir}/{slide}.h5`.
    pub features_dir: PathBuf,
    /// The features dataset's name; `None` finds it (see
    /// [`FEATURE_DATASETS`](super::FEATURE_DATASETS)).
    pub features_key: Option<String>,
    /// Leave out slides whose file is missing (they are counted in
    /// [`Cohort::skipped`]) instead of failing.
    pub skip_missing: bool,
    /// Keep slides whose file is missing as slides without tiles (a missing modality:
    /// [`Cohort::has_wsi`] is false), instead of failing.
    pub allow_missing: bool,
}

impl TileOptions {
    /// Files in `features_dir`, dataset found automatically, missing files an error.
    pub fn new(features_dir: impl Into<PathBuf>) -> Self {
        Self {
            features_dir: features_dir.into(),
            features_key: None,
            skip_missing: false,
            allow_missing: false,
        }
    }
}

/// What is known of a slide's tile-feature file without reading its features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlideTiles {
    /// The file.
    pub path: PathBuf,
    /// The features dataset found.
    pub key: String,
    /// Number of tiles.
    pub tiles: usize,
    /// Feature width.
    pub dim: usize,
    /// Whether the file has tile coordinates.
    pub has_coords: bool,
}

/// How many tile files stay open at once. Keeping a file open keeps its chunk cache, so the
/// many bags of one slide decompress each gzip chunk once rather than once per bag.
const OPEN_FILES: usize = 16;

/// A cohort: the CSV table and, for each slide, its tile-feature file (opened once to read
/// its shape; features are read bag by bag later).
#[derive(Debug)]
pub struct Cohort {
    table: CohortTable,
    options: TileOptions,
    files: Vec<Option<SlideTiles>>,
    /// Slides whose file is absent, kept without tiles (with missing files allowed).
    absent: Vec<bool>,
    skipped: Vec<String>,
    feature_dim: usize,
    /// Recently used open files, most recent last.
    open: Mutex<Vec<(usize, Arc<TileFile>)>>,
}

impl Cohort {
    /// Joins `table` with its tile-feature files.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming its slide and file: missing files (all listed in one
    /// [`DataError::MissingFiles`], unless `skip_missing`), unreadable files, no features
    /// dataset, a bag of 0 tiles, a feature width that differs from the other slides'. Several
    /// problems come as [`DataError::Problems`].
    pub fn open(table: CohortTable, options: &TileOptions) -> Result<Self, DataError> {
        let (cohort, mut problems) = Self::scan(table, options);
        match problems.len() {
            0 => Ok(cohort),
            1 => Err(problems.remove(0)),
            _ => Err(DataError::Problems(problems)),
        }
    }

    /// Like [`open`](Self::open), but returns the cohort with every problem instead of failing:
    /// slides with a problem have no file. For reports such as `med-crossvit check`.
    pub fn scan(table: CohortTable, options: &TileOptions) -> (Self, Vec<DataError>) {
        let located: Vec<Result<PathBuf, Vec<PathBuf>>> = table
            .slides()
            .iter()
            .map(|s| locate(&options.features_dir, s.project.as_deref(), &s.slide))
            .collect();
        let mut problems = Vec::new();
        let mut skipped = Vec::new();
        let missing: Vec<(String, Vec<PathBuf>)> = located
            .iter()
            .zip(table.slides())
            .filter_map(|(l, s)| {
                l.as_ref()
                    .err()
                    .map(|tried| (s.slide.clone(), tried.clone()))
            })
            .collect();
        if !missing.is_empty() && !options.allow_missing {
            if options.skip_missing {
                skipped = missing.into_iter().map(|(slide, _)| slide).collect();
            } else {
                problems.push(DataError::MissingFiles { missing });
            }
        }
        let key = options.features_key.as_deref();
        let opened: Vec<Result<Option<SlideTiles>, DataError>> = located
            .par_iter()
            .zip(table.slides().par_iter())
            .map(|(path, record)| match path {
                Ok(path) => SlideTiles::open(path, &record.slide, key).map(Some),
                Err(_) => Ok(None),
            })
            .collect();
        let mut files = Vec::with_capacity(opened.len());
        for result in opened {
            match result {
                Ok(f) => files.push(f),
                Err(e) => {
                    problems.push(e);
                    files.push(None);
                }
            }
        }
        let feature_dim = common_width(&mut files, &table, &mut problems);
        let mut absent = vec![false; files.len()];
        if options.allow_missing {
            for (i, l) in located.iter().enumerate() {
                absent[i] = l.is_err();
            }
        }
        let cohort = Self {
            table,
            options: options.clone(),
            absent,
            files,
            skipped,
            feature_dim,
            open: Mutex::new(Vec::new()),
        };
        (cohort, problems)
    }

    /// A cohort whose slides are all without tiles, for a run on expression alone
    /// ([`Modalities::Rna`](super::Modalities::Rna)): no file is looked for, every slide takes
    /// part ([`members`](Self::members)) with [`has_wsi`](Self::has_wsi) false, and its bags
    /// serve one row of zeros of width `feature_dim` (the model's `wsi_dim`).
    pub fn without_tiles(table: CohortTable, feature_dim: usize) -> Self {
        let slides = table.len();
        Self {
            table,
            options: TileOptions {
                allow_missing: true,
                ..TileOptions::new(PathBuf::new())
            },
            files: vec![None; slides],
            absent: vec![true; slides],
            skipped: Vec::new(),
            feature_dim,
            open: Mutex::new(Vec::new()),
        }
    }

    /// The CSV table.
    pub fn table(&self) -> &CohortTable {
        &self.table
    }

    /// The options the files were found with.
    pub fn options(&self) -> &TileOptions {
        &self.options
    }

    /// Feature width shared by the slides.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// Slide `index`'s file, or `None` when it was skipped or had a problem.
    pub fn tiles(&self, index: usize) -> Option<&SlideTiles> {
        self.files[index].as_ref()
    }

    /// Whether slide `index` has a usable tile file (with missing files allowed, a slide
    /// without one takes part without tiles).
    pub fn has_wsi(&self, index: usize) -> bool {
        self.files[index].is_some()
    }

    /// Indices of the slides that take part: those with a usable file, and with missing files
    /// allowed those whose file is absent (never one whose file is present but unusable).
    pub fn members(&self) -> Vec<usize> {
        (0..self.files.len())
            .filter(|&i| self.files[i].is_some() || self.absent[i])
            .collect()
    }

    /// How many slides take part ([`members`](Self::members)) and how many distinct patients
    /// they belong to: the counts `check` and training both report.
    pub fn counts(&self) -> (usize, usize) {
        let members = self.members();
        let records = self.table.slides();
        let patients: std::collections::HashSet<&str> = members
            .iter()
            .map(|&i| records[i].patient.as_str())
            .collect();
        (members.len(), patients.len())
    }

    /// Indices of the slides that have a usable file.
    pub fn usable(&self) -> Vec<usize> {
        (0..self.files.len())
            .filter(|&i| self.files[i].is_some())
            .collect()
    }

    /// `(slide index, tile count)` of the given slides that have a usable file.
    pub fn tile_counts(&self, slides: &[usize]) -> Vec<(usize, usize)> {
        slides
            .iter()
            .filter_map(|&i| self.files[i].as_ref().map(|f| (i, f.tiles)))
            .collect()
    }

    /// The bag sources of the member slides among `slides` (see [`members`](Self::members)):
    /// one per patient, pooling its slides, with [`Unit::Patient`]; one per slide with
    /// [`Unit::Slide`]. In patient order, each patient's slides in CSV order. A slide without
    /// a tile file counts 0 tiles (its bags have no tiles: see [`training_bags`]).
    ///
    /// [`training_bags`]: super::training_bags
    pub fn bag_sources(&self, slides: &[usize], patients: &Patients, unit: Unit) -> Vec<BagSource> {
        let mut chosen = vec![false; self.files.len()];
        for &s in slides {
            chosen[s] = true;
        }
        let mut sources = Vec::new();
        for p in 0..patients.len() {
            let members: Vec<(usize, usize)> = patients
                .slides(p)
                .iter()
                .filter(|&&s| chosen[s])
                .filter_map(|&s| match &self.files[s] {
                    Some(f) => Some((s, f.tiles)),
                    None if self.absent[s] => Some((s, 0)),
                    None => None,
                })
                .collect();
            match unit {
                Unit::Patient if !members.is_empty() => sources.push(BagSource {
                    patient: p,
                    slides: members,
                }),
                Unit::Patient => {}
                Unit::Slide => sources.extend(members.into_iter().map(|slide| BagSource {
                    patient: p,
                    slides: vec![slide],
                })),
            }
        }
        sources
    }

    /// Slides left out because their file was missing (with `skip_missing`).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Slide `index`'s file, from the cache of recently used files or freshly opened.
    ///
    /// # Errors
    ///
    /// [`DataError::Setting`] when the slide has no usable file; the errors of
    /// [`TileFile::open`].
    pub fn open_file(&self, index: usize) -> Result<Arc<TileFile>, DataError> {
        let tiles = self.files[index]
            .as_ref()
            .ok_or_else(|| DataError::Setting {
                setting: "slide",
                message: format!(
                    "slide `{}` has no usable tile file",
                    self.table.slides()[index].slide
                ),
            })?;
        {
            let mut open = self
                .open
                .lock()
                .expect("the file cache lock is never poisoned");
            if let Some(pos) = open.iter().position(|(i, _)| *i == index) {
                let entry = open.remove(pos);
                let file = entry.1.clone();
                open.push(entry);
                return Ok(file);
            }
        }
        // Opened outside the lock, so workers open different files in parallel.
        let file = Arc::new(TileFile::open(&tiles.path, Some(&tiles.key))?);
        let mut open = self
            .open
            .lock()
            .expect("the file cache lock is never poisoned");
        if !open.iter().any(|(i, _)| *i == index) {
            if open.len() >= OPEN_FILES {
                open.remove(0);
            }
            open.push((index, file.clone()));
        }
        Ok(file)
    }

    /// Checks the cohort's feature width against a model's `wsi_dim`.
    ///
    /// # Errors
    ///
    /// [`DataError::FeatureWidth`] naming a slide's file.
    pub fn check_feature_dim(&self, wsi_dim: usize) -> Result<(), DataError> {
        match self.files.iter().flatten().next() {
            Some(f) if f.dim != wsi_dim => Err(DataError::FeatureWidth {
                path: f.path.clone(),
                expected: wsi_dim,
                got: f.dim,
                reference: "the model (wsi_dim)".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// The cohort's feature width: the most common among `files` (the narrower on a tie). Each
/// file of another width is a [`DataError::FeatureWidth`] problem, and taken out.
fn common_width(
    files: &mut [Option<SlideTiles>],
    table: &CohortTable,
    problems: &mut Vec<DataError>,
) -> usize {
    // The cohort's width is the most common one; every other width is a problem.
    let mut widths: HashMap<usize, usize> = HashMap::new();
    for f in files.iter().flatten() {
        *widths.entry(f.dim).or_default() += 1;
    }
    let feature_dim = widths
        .iter()
        .max_by_key(|&(dim, count)| (*count, std::cmp::Reverse(*dim)))
        .map(|(&dim, _)| dim)
        .unwrap_or(0);
    for (slot, record) in files.iter_mut().zip(table.slides()) {
        if let Some(f) = slot
            && f.dim != feature_dim
        {
            problems.push(DataError::FeatureWidth {
                path: f.path.clone(),
                expected: feature_dim,
                got: f.dim,
                reference: format!("the cohort (most slides; slide `{}` differs)", record.slide),
            });
            *slot = None;
        }
    }
    feature_dim
}

impl SlideTiles {
    /// Opens the tile file at `path` of `slide` (features dataset `key`) for its shape.
    ///
    /// # Errors
    ///
    /// The file's [`TileFile::open`] error; [`DataError::EmptyBag`] for a file of 0 tiles.
    fn open(path: &Path, slide: &str, key: Option<&str>) -> Result<Self, DataError> {
        let file = TileFile::open(path, key)?;
        if file.tiles() == 0 {
            return Err(DataError::EmptyBag {
                path: path.to_path_buf(),
                slide: slide.to_string(),
            });
        }
        Ok(SlideTiles {
            path: path.to_path_buf(),
            key: file.features_key().to_string(),
            tiles: file.tiles(),
            dim: file.dim(),
            has_coords: file.has_coords(),
        })
    }
}
